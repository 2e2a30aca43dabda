"""`userlist` sections of haproxy.cfg -> model.Userlist (manual 3.4).

    userlist operators
        group admins users alice
        user alice password $6$...      # a crypt(3) hash
        user bob insecure-password secret groups admins

    frontend api
        acl authorised http_auth(operators)
        http-request auth realm OpenStack unless authorised

The parser in haproxy.py dispatches the lines of a userlist section here through
the same keyword table (`user` and `group` have one meaning per section kind);
handlers share its signature (parser, state, args, line, negated). As in
programs.py, haproxy.py is imported only inside functions, because it imports
this module to build its table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from haply.config.diagnostics import Location
from haply.config.model import User, Userlist

NAME = re.compile(r"[A-Za-z0-9_.:-]+")


def _error(message: str) -> Exception:
    from haply.config.haproxy import ParseError

    return ParseError(message)


@dataclass
class UserlistState:
    """A userlist section while it is read; `freeze()` makes the model."""

    name: str
    location: Location
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> users its line names

    def freeze(self) -> Userlist:
        members = {group: list(users) for group, users in self.groups.items()}
        for user in self.users.values():
            for group in user.groups:
                if user.name not in members[group]:
                    members[group].append(user.name)
        return Userlist(self.name, tuple(self.users.values()),
                        tuple((group, tuple(users)) for group, users in members.items()),
                        self.location)


def open_section(args: list[str], location: Location) -> UserlistState:
    if len(args) != 1:
        raise _error("'userlist' expects a name")
    if not NAME.fullmatch(args[0]):
        raise _error(f"invalid userlist name '{args[0]}': use letters, digits, '-', '_', '.' and ':'")
    return UserlistState(args[0], location)


def close_section(state: UserlistState, known: dict[str, Userlist]) -> Userlist:
    if state.name in known:
        raise _error(f"userlist '{state.name}' is declared twice (first at {known[state.name].location})")
    for user in state.users.values():
        for group in user.groups:
            if group not in state.groups:
                raise _error(f"user '{user.name}' of userlist '{state.name}' names group '{group}', "
                             "which no 'group' line of the userlist declares")
    for group, users in state.groups.items():
        for name in users:
            if name not in state.users:
                raise _error(f"group '{group}' of userlist '{state.name}' names user '{name}', "
                             "which no 'user' line of the userlist declares")
    userlist = known[state.name] = state.freeze()
    return userlist


def _names(text: str, what: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    for name in names:
        if not NAME.fullmatch(name):
            raise _error(f"invalid {what} name '{name}'")
    return names


def _user(parser, state: UserlistState, args, line, negated) -> None:
    words = [w.text for w in args]
    if not words:
        raise _error("'user' expects a name, then password <hash> or insecure-password <password>")
    name, rest = words[0], words[1:]
    if name in state.users:
        raise _error(f"user '{name}' is declared twice in userlist '{state.name}'")
    password, insecure, groups = None, False, []
    while rest:
        if len(rest) < 2:
            raise _error(f"'{rest[0]}' expects a value")
        option, value, rest = rest[0], rest[1], rest[2:]
        if option in ("password", "insecure-password"):
            if password is not None:
                raise _error(f"user '{name}': give one password or insecure-password")
            password, insecure = value, option == "insecure-password"
        elif option == "groups":
            groups += _names(value, "group")
        else:
            raise _error(f"unexpected '{option}' in 'user {name}': expected password, "
                         "insecure-password or groups")
    if password is None:
        parser.diagnostics.warning(line.location, f"user '{name}' has no password: nobody can "
                                   "authenticate as it (add password or insecure-password)")
    state.users[name] = User(name, password, insecure, tuple(groups))


def _group(parser, state: UserlistState, args, line, negated) -> None:
    words = [w.text for w in args]
    if not words:
        raise _error("'group' expects a name, optionally followed by users <user>[,...]")
    name = _names(words[0], "group")[0]
    if name in state.groups:
        raise _error(f"group '{name}' is declared twice in userlist '{state.name}'")
    users = []
    if len(words) > 1:
        if words[1] != "users" or len(words) != 3:
            raise _error(f"unexpected '{' '.join(words[1:])}' in 'group {name}': expected users <user>[,...]")
        users = _names(words[2], "user")
    state.groups[name] = users


HANDLERS = {"user": _user, "group": _group}

__all__ = ["HANDLERS", "UserlistState", "close_section", "open_section"]
