"""`mailers` sections and a proxy's `email-alert` lines (manual 3.6 and 4.2).

    mailers ops
        mailer smtp1 192.0.2.25:25
        timeout mail 20s

    backend keystone
        email-alert mailers ops
        email-alert from haproxy@lb1.example.org
        email-alert to ops@example.org
        email-alert level notice

A proxy mails only when it has all of `from`, `to` and `mailers`; with some
but not all of them HAProxy 2.6 warns that it ignores them, and so does haply
(in its words). The mailers section is looked up once every file is read
(`check_references`), as HAProxy resolves it after parsing; a section no proxy
mails through is warned about, as HAProxy removes it. haply.alerts sends.

The parser in haproxy.py dispatches the lines of a mailers section, and the
`email-alert` lines of proxies, here; haproxy.py is imported only inside
functions, because it imports this module to build its table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from haply.config.diagnostics import Diagnostics, Location
from haply.config.model import DEFAULT_MAIL_TIMEOUT, EmailAlert, Mailer, MailersSection
from haply.config.units import parse_port, parse_time

NAME = re.compile(r"[A-Za-z0-9_.:-]+")
# The five settings, in the words of the warning HAProxy 2.6 gives.
SETTINGS = ("from", "level", "mailers", "myhostname", "to")
REQUIRED = ("from", "mailers", "to")
# Manual 4.2 "email-alert level": "By default level is alert".
DEFAULT_LEVEL = "alert"


def _error(message: str) -> Exception:
    from haply.config.haproxy import ParseError

    return ParseError(message)


# ------------------------------------------------------------ mailers section


@dataclass
class MailersState:
    """A mailers section while it is read."""

    name: str
    location: Location
    mailers: list[Mailer] = field(default_factory=list)
    timeout: float = DEFAULT_MAIL_TIMEOUT

    def freeze(self) -> MailersSection:
        return MailersSection(self.name, tuple(self.mailers), self.timeout, self.location)


def open_section(args: list[str], location: Location) -> MailersState:
    if not args:
        raise _error("'mailers' expects a name")
    if len(args) > 1:
        raise _error(f"unexpected '{args[1]}' after the mailers name: expected 'mailers NAME'")
    if not NAME.fullmatch(args[0]):
        raise _error(f"invalid mailers section name '{args[0]}': use letters, digits, '-', '_', '.' and ':'")
    return MailersState(args[0], location)


def close_section(state: MailersState, known: dict[str, MailersSection]) -> MailersSection:
    if state.name in known:
        raise _error(f"mailers section '{state.name}' has the same name as another mailers "
                     f"section declared at {known[state.name].location}")
    section = known[state.name] = state.freeze()
    return section


def _mailer(parser, state: MailersState, args, line, negated) -> None:
    from haply.config.haproxy import _host_port

    words = [w.text for w in args]
    if len(words) < 2:
        raise _error("'mailer' expects <name> and <addr>:<port> as arguments")
    if len(words) > 2:
        raise _error(f"'mailer {words[0]}': unexpected '{words[2]}' after the address")
    name, address = words
    if not NAME.fullmatch(name):
        raise _error(f"invalid mailer name '{name}': use letters, digits, '-', '_', '.' and ':'")
    host, port = _host_port(address, f"mailer '{name}' address", True)
    if host in ("", "*"):
        raise _error(f"'mailer {name}' needs the address of an SMTP server, not '{address}'")
    state.mailers.append(Mailer(name, host, parse_port(port, f"mailer '{name}' port"), line.location))


def _timeout_mail(parser, state: MailersState, args, line, negated) -> None:
    words = [w.text for w in args]
    if len(words) != 1:
        raise _error("'timeout mail' expects <time> as argument")
    state.timeout = parse_time(words[0], "timeout mail")
    if state.timeout <= 0:
        raise _error("'timeout mail' must be more than 0")


HANDLERS = {"mailer": _mailer, "timeout mail": _timeout_mail}


# ------------------------------------------------------- a proxy's settings


def email_alert(parser, state, args, line, negated) -> None:
    """`email-alert from|to|level|mailers|myhostname VALUE` in a proxy or defaults."""
    from haply.config.haproxy import LEVELS, HOSTNAME

    setting = line.words[1].text  # the keyword is "email-alert SETTING"
    words = [w.text for w in args]
    if len(words) != 1:
        shown = f"'email-alert {setting}'"
        raise _error(f"{shown} expects one argument" + (f" (got '{' '.join(words)}')" if words else ""))
    value = words[0]
    if setting == "level" and value not in LEVELS:
        raise _error(f"'email-alert level' expects one of {', '.join(LEVELS)} (got '{value}')")
    if setting == "myhostname" and not HOSTNAME.fullmatch(value):
        raise _error(f"'email-alert myhostname' expects a host name (got '{value}')")
    if setting in ("from", "to") and (not value or any(c in value for c in "<>\r\n ")):
        raise _error(f"'email-alert {setting}' expects an e-mail address (got '{value}')")
    state.email_alert[setting] = (value, line.location)


def freeze(settings: dict[str, tuple[str, Location]], proxy_kind: str, proxy_name: str,
           location: Location, diagnostics: Diagnostics) -> EmailAlert | None:
    """A proxy's settings as the model keeps them: complete, or none at all
    (with HAProxy's warning)."""
    if not settings:
        return None
    if any(name not in settings for name in REQUIRED):
        diagnostics.warning(
            location, f"'email-alert' will be ignored for {proxy_kind} '{proxy_name}': "
            "'email-alert from', 'email-alert mailers' and 'email-alert to' are each needed "
            f"once any email-alert line is given (missing: "
            f"{', '.join(name for name in REQUIRED if name not in settings)}); HAProxy ignores it too")
        return None
    value = {name: text for name, (text, _) in settings.items()}
    return EmailAlert(value["mailers"], value["from"], value["to"], value.get("level", DEFAULT_LEVEL),
                      value.get("myhostname"), settings["mailers"][1])


def check_references(config, diagnostics: Diagnostics) -> None:
    """Each proxy's mailers section exists; each section with mailers is used."""
    sections = {section.name: section for section in config.mailers}
    used = set()
    for proxy in config.proxies:
        alert = proxy.email_alert
        if alert is None:
            continue
        if alert.mailers not in sections:
            diagnostics.error(alert.location, f"proxy '{proxy.name}': unable to find mailers "
                              f"'{alert.mailers}' (no mailers section has that name)")
        used.add(alert.mailers)
    for section in config.mailers:
        if section.mailers and section.name not in used:
            diagnostics.warning(section.location, f"mailers section '{section.name}' is not used by "
                                "any proxy's complete email-alert settings (HAProxy removes it as "
                                "incomplete)")


__all__ = ["HANDLERS", "MailersState", "check_references", "close_section", "email_alert", "freeze",
           "open_section"]
