"""ACL conditions compiled once into plain predicates over a request view.

A `Condition` from the model is turned into nested closures at start, so a request
pays only for the tests it actually reaches: no per-request parsing of the rule, no
dispatch on fetch names. Matching follows HAProxy's documented ACL semantics: an ACL
is true if any of its patterns matches; `-i` folds case; terms are ANDed, `||`
groups ORed, `!` negates, `unless` inverts the whole.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Callable, Protocol

from haply.config.acl import (PAYLOAD_FETCHES, PAYLOAD_STRINGS, READS_PAYLOAD, REQUEST_ONLY_FETCHES,
                              RESPONSE_ONLY_FETCHES)
from haply.config.model import Acl, Condition, Term, Userlist
from haply.http.basic_auth import Accounts
from haply.http.values import comma_values, cookie_values
from haply.proxy import counters, payload, variables
from haply.runtime.registry import MAINT, UP


class RequestView(Protocol):
    method: str
    path: str  # without the query string
    uri: str  # the whole target
    context: object  # haply.http.headers.SampleContext: the connection's (ssl_fc_sni)
    client_ip: str
    local_ip: str  # the address the client connected to (dst)
    local_port: int  # and its port (dst_port)
    ssl: bool

    def header(self, name: str) -> list[str]:
        """Every value of a header (lower-case name), comma lists not split."""


Predicate = Callable[[RequestView], bool]


class UnsupportedFetch(ValueError):
    pass


# The userlists of the configuration in force (`use_userlists`), for http_auth.
_accounts: dict[str, Accounts] = {}


# The backends of the engine in force (`use_backends`), for nbsrv: name ->
# haply.proxy.backend.BackendRuntime, filled as the engine builds them.
_backends: dict = {}


# The stick-tables of the engine in force (`use_tables`), for the sticky
# counter fetches: name -> haply.proxy.stick.StickTable, and its loop's clock.
_tables: dict = {}
_clock: Callable[[], float] = lambda: 0.0


def use_tables(tables: dict, clock: Callable[[], float]) -> None:
    """Make tables those the sc_* and src_* fetches and track-sc rules read,
    at the time clock() gives; the engine calls it before compiling any
    condition."""
    global _tables, _clock
    _tables, _clock = tables, clock


def stick_table(name: str):
    """The table of that name in force, if any."""
    return _tables.get(name)


def clock() -> float:
    return _clock()


def use_backends(backends: dict) -> None:
    """Make backends (filled later, read when a condition is evaluated) those
    nbsrv counts the servers of; the engine calls it before compiling any
    condition."""
    global _backends
    _backends = backends


def use_userlists(userlists) -> None:
    """Make the configuration's userlists those http_auth and http_auth_group
    read; the engine calls it before compiling any condition."""
    _accounts.clear()
    for userlist in userlists:
        _accounts[userlist.name] = Accounts(userlist)


def compile_condition(condition: Condition | None, response: bool = False) -> Predicate | None:
    """A predicate over a request (RequestView). `response`: the condition
    of an http-response rule, where an acl on the request's target, fields or
    credentials never matches, as in HAProxy (REQUEST_ONLY_FETCHES)."""
    if condition is None:
        return None
    groups = [[_compile_term(term, response) for term in group] for group in condition.any_of]

    def matches(request: RequestView) -> bool:
        for group in groups:
            for test in group:
                if not test(request):
                    break
            else:
                return True
        return False

    if condition.unless:
        return lambda request: not matches(request)
    return matches


def compile_rules(rules):
    """[(predicate or None, rule)] in file order for rules that each end a
    request when their condition holds (redirect, http-request deny), or None
    without rules, so that a proxy without any pays one `is None` test."""
    if not rules:
        return None
    return [(compile_condition(rule.condition), rule) for rule in rules]


def compile_tcp_rules(proxy, stage: str) -> list:
    """A stage's tcp-request rules in file order: (condition or None, verdict),
    the verdict True (accept), False (reject), expect_proxy or a sticky counter action (one
    a mode http proxy's content stage tracks for the request alone: HAProxy
    evaluates that stage again for each request)."""
    per_request = stage == "content" and proxy.mode == "http"
    return [(compile_condition(rule.condition),
             expect_proxy if rule.action == "expect-proxy"
             else rule.action == "accept" if rule.counter is None
             else compile_counter_action(rule.counter, per_request, counts_request=False))
            for rule in proxy.tcp_request_rules if rule.stage == stage]


def expect_proxy(view) -> None:
    """`tcp-request connection expect-proxy layer4`: the connection starts
    with a PROXY header (haply.proxy.accept_proxy reads it); the rules go on."""
    view.expects_proxy = True


def rejects(rules, view) -> bool:
    """Whether the first accept or reject rule that applies to view rejects
    it (none: accept); the counter actions met before it are applied."""
    for test, verdict in rules:
        if test is None or test(view):
            if verdict is True:
                return False
            if verdict is False:
                return True
            verdict(view)
    return False


def compile_counter_action(rule, per_request: bool = False,
                           counts_request: bool | None = None) -> Callable[[object], None]:
    """A track-scN, sc-inc-gpc0|1 or sc-set-gpt0 action (model.CounterRule)
    as a call on the view of a connection (tcp-request) or a request
    (per_request: what it tracks stops with the request; counts_request: the
    request counts in the entry it tracks, by default when per_request)."""
    if counts_request is None:
        counts_request = per_request
    tables = _tables
    slot = rule.slot
    if rule.action == "track":
        key_of = counters.fetch_for(rule.key)
        table_name = rule.table

        def track(view) -> None:
            table = tables.get(table_name)
            key = key_of(view)
            if table is not None and key is not None:
                view.tracker().track(slot, table, key, _clock(), per_request, counts_request)
        return track
    action, value = rule.action, rule.value

    def count(view) -> None:
        tracking = view.tracking
        if tracking is not None:
            tracking.apply(action, slot, value, _clock())
    return count


def first_match(compiled, request):
    """The first compiled rule whose condition holds for request, or None."""
    for test, rule in compiled:
        if test is None or test(request):
            return rule
    return None


def _integer_tests(patterns: tuple[str, ...]) -> list[Callable[[int], bool]]:
    """HAProxy's integer patterns: N, LOW:HIGH, or an operator (eq, ge, gt,
    le, lt) and the number after it (the parser checked them)."""
    tests: list[Callable[[int], bool]] = []
    operator = None
    for pattern in patterns:
        if pattern in ("eq", "ge", "gt", "le", "lt"):
            operator = pattern
            continue
        low, _, high = pattern.partition(":")
        low, high = int(low), int(high or low)
        if operator is None or operator == "eq":
            tests.append(lambda value, low=low, high=high: low <= value <= high)
        elif operator == "ge":
            tests.append(lambda value, low=low: value >= low)
        elif operator == "gt":
            tests.append(lambda value, low=low: value > low)
        elif operator == "le":
            tests.append(lambda value, low=low: value <= low)
        else:
            tests.append(lambda value, low=low: value < low)
        operator = None
    return tests


def first_answer(compiled, request):
    """first_match over a proxy's answering rules, among which those that
    rewrite the request line (haply.http.rewrite.LineRewrite) and the sticky
    counter actions (compile_answers) are applied as they come, so that each
    rule sees the request as the ones above left it. Such a step may answer
    all the same (cache-use, when the cache holds the object)."""
    for test, rule in compiled:
        if test is None or test(request):
            if rule.action != "rewrite":
                return rule
            answer = rule.apply(request)
            if answer is not None:
                return answer
    return None


class CounterStep:
    """A sticky counter action among the answering rules (first_answer)."""

    __slots__ = ("apply",)
    action = "rewrite"  # applied in place, as a line rewrite is

    def __init__(self, rule):
        self.apply = compile_counter_action(rule, per_request=rule.action == "track")


def compile_response_condition(condition: Condition | None) -> Predicate | None:
    return compile_condition(condition, response=True)


def _never(request) -> bool:
    return False


def _compile_term(term: Term, response: bool = False) -> Predicate:
    """A named acl declared on several lines matches if one of them does."""
    tests = [_compile_line(acl, response) for acl in term.acls]
    if len(tests) == 1:
        test = tests[0]
    else:
        def test(request) -> bool:
            for each in tests:
                if each(request):
                    return True
            return False
    if term.negated:
        return lambda request: not test(request)
    return test


def _compile_line(acl: Acl, response: bool) -> Predicate:
    unreadable = REQUEST_ONLY_FETCHES if response else RESPONSE_ONLY_FETCHES
    return _never if acl.fetch in unreadable else compile_acl(acl)


def compile_acl(acl: Acl) -> Predicate:
    fold = "-i" in acl.flags
    patterns = tuple(p.lower() for p in acl.patterns) if fold else acl.patterns
    fetch = acl.fetch

    if fetch in READS_PAYLOAD:  # read once the inspection is over: no "maybe" left
        inspect = compile_payload_acl(acl)
        return lambda request: inspect(request) is True

    if fetch in ("ssl_fc", "always_true", "always_false", "TRUE", "FALSE"):
        if fetch == "ssl_fc":
            return lambda request: request.ssl
        constant = fetch in ("always_true", "TRUE")
        return lambda request: constant

    if fetch in ("src", "dst"):
        networks = tuple(ipaddress.ip_network(p, strict=False) for p in acl.patterns)
        local = fetch == "dst"

        def match_address(request: RequestView) -> bool:
            try:
                address = ipaddress.ip_address(request.local_ip if local else request.client_ip)
            except ValueError:
                return False
            if address.version == 6 and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            return any(address in net for net in networks)
        return match_address

    if fetch in ("http_auth", "http_auth_group"):
        # (the configuration check made sure the userlist exists)
        accounts = _accounts.get(acl.arg) or Accounts(Userlist(acl.arg or ""))
        if fetch == "http_auth":
            return lambda request: accounts.authenticated(request.header("authorization")) is not None
        groups = acl.patterns

        def match_group(request: RequestView) -> bool:
            user = accounts.authenticated(request.header("authorization"))
            return user is not None and accounts.in_groups(user, groups)
        return match_group

    if fetch == "status":
        tests = _integer_tests(acl.patterns)
        return lambda request: any(test(request.status) for test in tests)

    if fetch == "nbsrv":
        # the servers its balancer may choose now: the usable active ones,
        # else the first usable backup (all of them under allbackups), as
        # HAProxy counts them (the configuration check made sure it exists)
        tests = _integer_tests(acl.patterns)
        backends, name = _backends, acl.arg

        def match_server_count(request) -> bool:
            backend = backends.get(name)
            count = len(backend.balancer.group) if backend is not None else 0
            return any(test(count) for test in tests)
        return match_server_count

    if fetch == "srv_is_up":
        backends, (name, server_name) = _backends, acl.arg.split("/", 1)

        def match_server_up(request) -> bool:
            backend = backends.get(name)
            server = backend.registry.get(name, server_name) if backend is not None else None
            return server is not None and server.admin != MAINT and server.operational == UP
        return match_server_up

    if fetch.startswith(("sc_", "src_")):
        return _sticky_counter_test(fetch, acl.arg, acl.patterns)

    if fetch == "dst_port":  # N or LOW:HIGH (the parser checked them)
        tests = _integer_tests(acl.patterns)
        return lambda request: any(test(request.local_port) for test in tests)

    if fetch in ("hdr_cnt", "cook_cnt"):
        tests = _integer_tests(acl.patterns)
        values_of = _MULTI_VALUED[fetch[:-4]](acl.arg or "")
        return lambda request: any(test(len(values_of(request))) for test in tests)

    sample, method = _split_fetch(fetch)
    matcher = _matcher(method, acl.patterns if method in ("len", "val", "ip") else patterns)
    multi = _MULTI_VALUED.get(sample)
    if multi is not None:
        name, _, occurrence = (acl.arg or "").partition(",")
        if sample == "var":  # var(NAME[,DEFAULT])
            values_of = _variable_values(name.strip(), occurrence.strip() if occurrence else None)
        else:
            values_of = multi(name)
            if occurrence:
                values_of = _occurrence(values_of, int(occurrence))
        if method == "found":
            return lambda request: bool(values_of(request))

        def match_values(request: RequestView) -> bool:
            for value in values_of(request):
                if fold:
                    value = value.lower()
                if matcher(value):
                    return True
            return False
        return match_values

    getter = _SAMPLES[sample]
    if method == "found":
        return lambda request: getter(request) is not None

    def match_sample(request: RequestView) -> bool:
        value = getter(request)
        if value is None:  # the sample is not there: no pattern matches
            return False
        if fold:
            value = value.lower()
        return matcher(value)
    return match_sample


# ------------------------------------------------- content inspection

# A condition during content inspection (haply.proxy.inspection): True,
# False, or MAYBE while the bytes it reads may still change its answer, the
# three-valued logic of HAProxy's acls (manual 7.1: "the test does not return
# false as long as the buffer is changing").
MAYBE = None
Inspection = Callable[[object], "bool | None"]


def compile_inspection(condition: Condition | None) -> Inspection | None:
    """A condition as content inspection evaluates it: an AND group is
    False if a term is, else MAYBE if a term is; the OR of groups True if
    one is, else MAYBE if one is; `!` and `unless` leave MAYBE alone."""
    if condition is None:
        return None
    groups = [[_inspecting_term(term) for term in group] for group in condition.any_of]

    def holds(view):
        answer = False
        for group in groups:
            result = True
            for test in group:
                value = test(view)
                if value is False:
                    result = False
                    break
                if value is MAYBE:
                    result = MAYBE
            if result is True:
                return True
            if result is MAYBE:
                answer = MAYBE
        return answer

    return _inspecting_not(holds) if condition.unless else holds


def _inspecting_not(test: Inspection) -> Inspection:
    """`!` or `unless` in three values: MAYBE stays MAYBE."""
    def negation(view):
        value = test(view)
        return MAYBE if value is MAYBE else not value
    return negation


def _inspecting_term(term: Term) -> Inspection:
    """As _compile_term, in three values: the lines of a named acl are ORed,
    so True if one holds, else MAYBE if one may still hold."""
    tests = [compile_payload_acl(acl) if acl.fetch in READS_PAYLOAD else _compile_line(acl, False)
             for acl in term.acls]
    if len(tests) == 1:
        test = tests[0]
    else:
        def test(view):
            answer = False
            for each in tests:
                value = each(view)
                if value is MAYBE:
                    answer = MAYBE
                elif value:
                    return True
            return answer
    return _inspecting_not(test) if term.negated else test


def compile_inspecting_rules(proxy) -> list:
    """compile_tcp_rules' content stage for inspection: the conditions as
    compile_inspection makes them."""
    return [(compile_inspection(rule.condition),
             rule.action == "accept" if rule.counter is None else compile_counter_action(rule.counter))
            for rule in proxy.tcp_request_rules if rule.stage == "content"]


def inspect(rules, view, start: int = 0) -> tuple[bool | None, int]:
    """The content rules' verdict on view from rule `start` on: (True: reject,
    False: accept, MAYBE: wait for more bytes, the index of the rule that
    waits, where the next evaluation resumes). Counter actions apply once,
    as their rule is passed (HAProxy evaluates the rules again from the
    first, so that a counter increment before a rule that waits counts
    each time: haply does not repeat it)."""
    for index in range(start, len(rules)):
        test, verdict = rules[index]
        holds = True if test is None else test(view)
        if holds is MAYBE:
            return MAYBE, index
        if holds:
            if verdict is True:
                return False, index
            if verdict is False:
                return True, index
            verdict(view)
    return False, len(rules)


def compile_payload_acl(acl: Acl) -> Inspection:
    """An acl on the connection's bytes (haply.proxy.payload): True or False,
    or MAYBE while a value that does not match may still change."""
    fetch = acl.fetch
    found = fetch.endswith("_found")
    if found:
        fetch = fetch[:-6]
    if fetch in PAYLOAD_FETCHES:
        sample, spec = payload.payload_sample(fetch, acl.arg), PAYLOAD_FETCHES[fetch]
        if found:
            matches = None
        elif spec.patterns == "none":
            matches = bool
        elif spec.patterns == "hex":
            blocks = frozenset(bytes.fromhex(p) for p in acl.patterns)
            matches = blocks.__contains__
        else:
            patterns = acl.patterns if spec.patterns == "integer" else tuple(
                p if p in ("eq", "ge", "gt", "le", "lt") else
                ":".join(str(payload.version_number(v)) for v in p.split(":")) for p in acl.patterns)
            tests = _integer_tests(patterns)
            matches = lambda value: any(test(value) for test in tests)  # noqa: E731
    else:
        sample_name, method = next(((name, fetch[len(name) + 1:] or "str") for name in PAYLOAD_STRINGS
                                    if fetch == name or fetch.startswith(name + "_")))
        sample = payload.payload_sample(sample_name)
        fold = "-i" in acl.flags
        if found:
            matches = None
        else:
            method_patterns = acl.patterns if method in ("len", "val", "ip") or not fold \
                else tuple(p.lower() for p in acl.patterns)
            matcher = _matcher(method, method_patterns)

            def matches(value) -> bool:
                for text in (value if value.__class__ is tuple else (value,)):  # ALPN: any protocol
                    if matcher(text.lower() if fold else text):
                        return True
                return False

    def test(view):
        try:
            value, may_change = sample(view)
        except AttributeError:  # a view with no bytes of its own: no sample
            return False
        if value is not None and (matches is None or matches(value)):
            return True
        return MAYBE if may_change and not view.final else False
    return test


def _sticky_counter_test(fetch: str, arg: str, patterns: tuple[str, ...]) -> Predicate:
    """sc_NAME ("N,TABLE") and src_NAME (TABLE): see haply.config.acl."""
    tables = _tables
    source, name = fetch.split("_", 1)
    tests = _integer_tests(patterns)
    if source == "sc":
        slot_text, _, table_name = arg.partition(",")
        slot = int(slot_text)
        if name == "tracked":
            return lambda view: view.tracking is not None and view.tracking.slots[slot] is not None

        def entry_of(view, now):
            tracking = view.tracking
            if tracking is None:
                return None
            return tracking.entry(slot, tables.get(table_name) if table_name else None, now)
    else:
        table_name = arg
        creates = name.startswith(("inc_", "clr_"))  # src_inc_gpc0 makes the entry it counts in
        stored = counters.stored_as(name)

        def entry_of(view, now):
            table = tables.get(table_name)
            if table is None:
                return None
            entry = table.find(view.client_ip, now)
            if entry is None:
                if creates:
                    return table.place(view.client_ip, now)
                # no entry reads as 0, if the table stores the counter at all
                return counters.NO_ENTRY if stored in table.stored else None
            return entry
    value_of = counters.fetch(name)
    if len(tests) == 1:
        holds = tests[0]  # the usual `gt N`: no generator over the patterns
    else:
        def holds(value: int) -> bool:
            return any(test(value) for test in tests)

    def match_counter(view) -> bool:
        now = _clock()
        entry = entry_of(view, now)
        if entry is None:
            return False
        value = value_of(entry, now)
        return value is not None and holds(value)
    return match_counter


def _query(request: RequestView) -> str | None:
    uri = request.uri
    cut = uri.find("?")
    return uri[cut + 1:] if cut >= 0 else None


def _client_sni(request: RequestView) -> str | None:
    # a connection in mode tcp (haply.proxy.connection) has no TLS of haply's
    context = getattr(request, "context", None)
    return context.sni if context is not None else None


# Samples with one value, or none (None) when the request has none.
_SAMPLES: dict[str, Callable[[RequestView], str | None]] = {
    "path": lambda request: request.path,
    "method": lambda request: request.method,
    "url": lambda request: request.uri,  # Request.url is the raw bytes
    "query": _query,
    "base": counters.base,
    "ssl_fc_sni": _client_sni,
}


def _header_values(name: str) -> Callable[[RequestView], list[str]]:
    """hdr(NAME): each comma-separated value, as HAProxy's hdr() reads them."""
    name = name.lower()
    return lambda request: comma_values(request.header(name))


def _cookie_values(name: str) -> Callable[[RequestView], list[str]]:
    """cook(NAME): the value of every cookie of that name in the Cookie fields."""
    return lambda request: cookie_values(request.header("cookie"), name)


def _parameter_values(name: str) -> Callable[[RequestView], list[str]]:
    """urlp(NAME): the value of every query parameter of that name (after
    '?', parameters end at '&' or ';'; not decoded)."""
    prefix = name + "="

    def values(request: RequestView) -> list[str]:
        query = _query(request)
        if not query:
            return []
        return [part[len(prefix):] for part in re.split("[&;]", query) if part.startswith(prefix)]
    return values


def _variable_values(name: str, default: str | None) -> Callable[[RequestView], list[str]]:
    """var(NAME[,DEFAULT]): the variable's value as text (none when unset,
    unless a default is given)."""
    read, missing = variables.read, [default] if default is not None else []

    def values(request: RequestView) -> list[str]:
        value = read(request, name)
        return missing if value is None else [variables.as_text(value)]
    return values


_MULTI_VALUED: dict[str, Callable[[str], Callable[[RequestView], list[str]]]] = {
    "hdr": _header_values, "cook": _cookie_values, "urlp": _parameter_values,
    "var": lambda name: _variable_values(name, None),
}


def _occurrence(values_of: Callable[[RequestView], list[str]], occurrence: int
                ) -> Callable[[RequestView], list[str]]:
    """hdr(NAME,OCC): only the OCCth value (1 the first, -1 the last; 0: all)."""
    if occurrence == 0:
        return values_of
    index = occurrence - 1 if occurrence > 0 else occurrence

    def values(request: RequestView) -> list[str]:
        found = values_of(request)
        try:
            return [found[index]]
        except IndexError:
            return []
    return values


_SUFFIXES = {"_beg": "beg", "_end": "end", "_sub": "sub", "_reg": "reg", "_dir": "dir",
             "_dom": "dom", "_len": "len", "_found": "found", "_ip": "ip", "_val": "val"}


def _split_fetch(fetch: str) -> tuple[str, str]:
    """A string sample's fetch (haply.config.acl.STRING_SAMPLES) as the
    sample and the match method."""
    for suffix, method in _SUFFIXES.items():
        if fetch.endswith(suffix):
            base = fetch[: -len(suffix)]
            if base in _SAMPLES or base in _MULTI_VALUED:
                return base, method
    if fetch in _SAMPLES or fetch in _MULTI_VALUED:
        return fetch, "str"
    raise UnsupportedFetch(f"ACL fetch '{fetch}' is not supported by haply")


_LEADING_INTEGER = re.compile(r"[+-]?[0-9]+")


def _address(text: str):
    text = text.strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        host, colon, port = text.rpartition(":")
        if not colon or "." not in host or not port.isdigit():
            return None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address


def _matcher(method: str, patterns: tuple[str, ...]) -> Callable[[str], bool]:
    if method == "str":
        pattern_set = frozenset(patterns)
        return pattern_set.__contains__
    if method == "beg":
        return lambda value: value.startswith(patterns)
    if method == "end":
        return lambda value: value.endswith(patterns)
    if method == "sub":
        return lambda value: any(p in value for p in patterns)
    if method == "reg":
        regexes = tuple(re.compile(p) for p in patterns)
        return lambda value: any(r.search(value) for r in regexes)
    if method == "dir":
        return lambda value: any(p in value.split("/") for p in patterns)
    if method == "dom":
        return lambda value: any(p in re.split(r"[./?:]", value) for p in patterns)
    if method == "len":  # integer patterns: N, LOW:HIGH, or an operator and N
        tests = _integer_tests(patterns)
        return lambda value: any(test(len(value)) for test in tests)
    if method == "found":
        return lambda value: True
    if method == "ip":  # the value read as an address (an IPv4 one may carry a port)
        networks = tuple(ipaddress.ip_network(p, strict=False) for p in patterns)

        def in_networks(value: str) -> bool:
            address = _address(value)
            return address is not None and any(address in network for network in networks)
        return in_networks
    if method == "val":  # the value's leading integer, as HAProxy converts it ("150abc": 150, "abc": 0)
        tests = _integer_tests(patterns)

        def integer_matches(value: str) -> bool:
            leading = _LEADING_INTEGER.match(value)
            number = int(leading.group()) if leading is not None else 0
            return any(test(number) for test in tests)
        return integer_matches
    raise UnsupportedFetch(f"matching method '{method}' is not supported by haply")
