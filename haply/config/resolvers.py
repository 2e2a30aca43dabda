"""`resolvers` sections and the servers' resolution keywords (manual 5.3.2 and 5.2).

    resolvers dns
        nameserver ns1 192.0.2.53:53
        parse-resolv-conf
        resolve_retries 3
        timeout resolve 1s
        timeout retry 1s
        hold nx 30s

    backend app
        server s1 app.example.org:80 resolvers dns resolve-prefer ipv4 init-addr none

Name servers are reached over UDP; `tcp@` name servers, and SRV labels as
server names (`_http._tcp.example.org`), are refused by name. The section a
server names is looked up once every file is read (`check_references`), as
HAProxy resolves it after parsing. Like HAProxy, haply adds a section named
`default` with the name servers of /etc/resolv.conf when none has that name
(`with_default`). haply.resolvers runs the resolutions.

The parser in haproxy.py dispatches the lines of a resolvers section here;
haproxy.py is imported only inside functions, because it imports this module
to build its table.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from haply.config.diagnostics import Diagnostics, Location
from haply.config.model import DEFAULT_HOLD, Nameserver, ResolversSection
from haply.config.units import parse_port, parse_time

NAME = re.compile(r"[A-Za-z0-9_.:-]+")
RESOLV_CONF = "/etc/resolv.conf"
DNS_PORT = 53
# HAProxy 2.6's bounds of accepted_payload_size (observed with `haproxy -c`).
PAYLOAD_RANGE = (12, 65535)
HOLD_STATUSES = tuple(status for status, _ in DEFAULT_HOLD)
PREFER = ("ipv4", "ipv6")
RESOLVE_OPTS = ("allow-dup-ip", "ignore-weight", "prevent-dup-ip")


def _error(message: str) -> Exception:
    from haply.config.haproxy import ParseError

    return ParseError(message)


# ----------------------------------------------------------- resolvers section


@dataclass
class ResolversState:
    """A resolvers section while it is read."""

    name: str
    location: Location
    nameservers: list[Nameserver] = field(default_factory=list)
    resolve_retries: int = 3
    timeout_resolve: float = 1.0
    timeout_retry: float = 1.0
    hold: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_HOLD))
    accepted_payload_size: int = 512

    def freeze(self) -> ResolversSection:
        return ResolversSection(self.name, tuple(self.nameservers), self.resolve_retries,
                                self.timeout_resolve, self.timeout_retry, tuple(self.hold.items()),
                                self.accepted_payload_size, self.location)


def open_section(args: list[str], location: Location) -> ResolversState:
    if not args:
        raise _error("missing name for resolvers section")
    if len(args) > 1:
        raise _error(f"unexpected '{args[1]}' after the resolvers name: expected 'resolvers NAME'")
    if not NAME.fullmatch(args[0]):
        raise _error(f"invalid resolvers section name '{args[0]}': use letters, digits, '-', '_', '.' and ':'")
    return ResolversState(args[0], location)


def close_section(state: ResolversState, known: dict[str, ResolversSection],
                  diagnostics: Diagnostics) -> ResolversSection:
    if state.name in known:
        raise _error(f"resolvers '{state.name}' has same name as another resolvers "
                     f"(declared at {known[state.name].location})")
    if not state.nameservers:
        diagnostics.warning(state.location, f"resolvers '{state.name}' has no nameservers configured")
    section = known[state.name] = state.freeze()
    return section


def _add_nameserver(state: ResolversState, nameserver: Nameserver) -> None:
    for other in state.nameservers:
        if other.name == nameserver.name:
            raise _error(f"nameserver '{nameserver.name}' has same name as another nameserver "
                         f"(declared at {other.location})")
    state.nameservers.append(nameserver)


def _nameserver(parser, state: ResolversState, args, line, negated) -> None:
    from haply.config.haproxy import _host_port

    words = [w.text for w in args]
    if len(words) < 2:
        raise _error("'nameserver' expects <name> and <addr>[:<port>] as arguments")
    if len(words) > 2:
        raise _error(f"'nameserver {words[0]}': unexpected '{words[2]}' after the address "
                     "(stream name servers' options are not supported by haply)")
    name, address = words
    if not NAME.fullmatch(name):
        raise _error(f"invalid nameserver name '{name}': use letters, digits, '-', '_', '.' and ':'")
    prefix, _, rest = address.partition("@")
    if rest:
        if prefix in ("tcp", "tcp4", "tcp6", "ssl", "ssl4", "ssl6"):
            raise _error(f"'nameserver {name}': name servers over TCP ('{prefix}@') are not supported "
                         "by haply; use a UDP address")
        if prefix not in ("udp", "udp4", "udp6"):
            raise _error(f"'nameserver {name}': unsupported address family '{prefix}@' "
                         "(expected udp@ or no prefix)")
        address = rest
    host, port = _host_port(address, f"nameserver '{name}' address", False)
    if port is None:
        raise _error(f"'nameserver {name}' : missing port specification in '{address}'")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise _error(f"'nameserver {name}' expects an IP address, not '{host}'") from None
    _add_nameserver(state, Nameserver(name, host, parse_port(port, f"nameserver '{name}' port"),
                                      line.location))


def read_resolv_conf(text: str) -> list[str]:
    """The addresses of the `nameserver` lines of a resolv.conf, in order."""
    found = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            found.append(words[1].split("%", 1)[0])  # fe80::1%eth0: the zone is not ours
    return found


def _parse_resolv_conf(parser, state: ResolversState, args, line, negated) -> None:
    if args:
        raise _error(f"'parse-resolv-conf' takes no argument (got '{args[0].text}')")
    try:
        with open(RESOLV_CONF, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as error:
        raise _error(f"'parse-resolv-conf': cannot read {RESOLV_CONF}: {error.strerror}") from None
    for address in read_resolv_conf(text):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            parser.diagnostics.warning(line.location, f"'parse-resolv-conf': {RESOLV_CONF} names "
                                       f"'{address}', which is not an IP address: skipped")
            continue
        # HAProxy names each one after its address (as `show resolvers` shows)
        _add_nameserver(state, Nameserver(address, address, DNS_PORT, line.location))


def _resolve_retries(parser, state: ResolversState, args, line, negated) -> None:
    words = [w.text for w in args]
    if len(words) != 1 or not words[0].isdigit() or int(words[0]) < 1:
        raise _error("'resolve_retries' expects a number of queries, at least 1"
                     + (f" (got '{' '.join(words)}')" if words else ""))
    state.resolve_retries = int(words[0])


def _timeout(parser, state: ResolversState, args, line, negated) -> None:
    event = line.words[1].text  # the keyword is "timeout resolve|retry"
    words = [w.text for w in args]
    if len(words) != 1:
        raise _error(f"'timeout {event}' expects <time> as argument")
    seconds = parse_time(words[0], f"timeout {event}")
    if seconds <= 0:
        raise _error(f"'timeout {event}' must be more than 0")
    setattr(state, f"timeout_{event}", seconds)


def _hold(parser, state: ResolversState, args, line, negated) -> None:
    status = line.words[1].text  # the keyword is "hold STATUS"
    words = [w.text for w in args]
    if len(words) != 1:
        raise _error(f"'hold {status}' expects a <time> as argument")
    state.hold[status] = parse_time(words[0], f"hold {status}")


def _accepted_payload_size(parser, state: ResolversState, args, line, negated) -> None:
    words = [w.text for w in args]
    low, high = PAYLOAD_RANGE
    if len(words) != 1 or not words[0].isdigit() or not low <= int(words[0]) <= high:
        raise _error(f"'accepted_payload_size' must be between {low} and {high} inclusive"
                     + (f" (was {words[0]})" if len(words) == 1 else ""))
    state.accepted_payload_size = int(words[0])


HANDLERS = {
    "nameserver": _nameserver, "parse-resolv-conf": _parse_resolv_conf,
    "resolve_retries": _resolve_retries, "accepted_payload_size": _accepted_payload_size,
    "timeout resolve": _timeout, "timeout retry": _timeout,
    **{f"hold {status}": _hold for status in HOLD_STATUSES},
}


# ------------------------------------------------------------ server options


def server_option(option: str, value: str) -> tuple[str, object]:
    """(Server field, value) of a server's resolution keyword, in HAProxy's
    words when the value is wrong."""
    if option == "resolvers":
        return "resolvers", value
    if option == "resolve-prefer":
        if value not in PREFER:
            raise _error("'resolve-prefer' expects either ipv4 or ipv6 as argument")
        return "resolve_prefer", value
    if option == "resolve-net":
        networks = []
        for text in value.split(","):
            try:
                networks.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                raise _error(f"'resolve-net' invalid network '{text}'") from None
        return "resolve_net", tuple(networks)
    # resolve-opts
    options = tuple(value.split(","))
    for item in options:
        if item not in RESOLVE_OPTS:
            raise _error(f"'resolve-opts' : unknown resolve-opts option '{item}', supported methods "
                         "are 'allow-dup-ip', 'ignore-weight', and 'prevent-dup-ip'")
        if item == "ignore-weight":
            raise _error("'resolve-opts ignore-weight' is not supported by haply (it concerns the "
                         "weights of SRV records, which haply does not resolve)")
    return "resolve_opts", options


DEFAULT_SECTION = "default"


def with_default(config, resolv_conf: str | None = None):
    """config with HAProxy's implicit `resolvers default` (manual 5.3.2): the
    name servers of /etc/resolv.conf, when no section has that name. As in
    HAProxy, a resolv.conf that cannot be read or names none gives no
    section and no error."""
    from dataclasses import replace

    if any(section.name == DEFAULT_SECTION for section in config.resolvers):
        return config
    path = resolv_conf or RESOLV_CONF
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            found = read_resolv_conf(handle.read())
    except OSError:
        return config
    nameservers = []
    for address in found:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            continue
        if all(n.name != address for n in nameservers):
            nameservers.append(Nameserver(address, address, DNS_PORT, Location(path, 0)))
    if not nameservers:
        return config
    section = ResolversSection(DEFAULT_SECTION, tuple(nameservers), location=Location(path, 0))
    return replace(config, resolvers=tuple(config.resolvers) + (section,))


def check_references(config, diagnostics: Diagnostics) -> None:
    """Each server's resolvers section exists."""
    sections = {section.name for section in config.resolvers}
    for proxy in config.proxies:
        for server in proxy.servers:
            if server.resolvers is None:
                continue
            if server.resolvers not in sections:
                diagnostics.error(server.location, f"backend '{proxy.name}', server '{server.name}': "
                                  f"unable to find required resolvers '{server.resolvers}'")


__all__ = ["DEFAULT_SECTION", "HANDLERS", "ResolversState", "check_references", "close_section",
           "open_section", "read_resolv_conf", "server_option", "with_default"]
