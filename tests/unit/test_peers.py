"""The peers protocol without sockets (haply.peers.codec, haply.peers.sync):
encoded integers, the messages HAProxy 2.6 sent on the wire (kept here as
bytes), a session's answers, and what an update does to a table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haply.config.model import StickTableSpec
from haply.peers import codec
from haply.peers.codec import PeerProtocolError
from haply.peers.sync import PeerLink, TableShare
from haply.proxy.stick import StickTable
from haply.runtime.registry import ServerState

# Captured from HAProxy 2.6.12 (`stick-table type ip size 1k expire 30s peers
# mesh store server_id,conn_cnt,http_req_rate(10s),gpc0`, `stick on src`,
# servers s1 `id 7` and s2 `id 9`), one request from 127.0.0.1 and the next.
HAPROXY_DEFINITION = bytes.fromhex("0a8211010262650404f5b2ff00f0c40d0af0e203")
HAPROXY_UPDATE = bytes.fromhex("0a8013000000047f0000010700010101000401027331")
HAPROXY_UPDATE_CACHED_NAME = bytes.fromhex("0a8010000000077f000001070002 0a0200 0101".replace(" ", ""))


def test_encoded_integers_as_documented():
    assert codec.encode_int(0x1234) == bytes.fromhex("f49401")  # the example of doc/peers.txt
    assert codec.encode_int(239) == b"\xef" and codec.encode_int(240) == b"\xf0\x00"
    assert codec.decode_int(bytes.fromhex("f5b2ff00"), 0) == (0x80415, 4)
    with pytest.raises(PeerProtocolError, match="ends inside"):
        codec.decode_int(b"\xf5\xb2", 0)


@given(st.integers(0, 2**64 - 1))
def test_any_integer_reads_back(value):
    data = codec.encode_int(value)
    assert codec.decode_int(data + b"tail", 0) == (value, len(data))


def test_what_haproxy_sent_reads_and_writes_back_the_same():
    messages, used = codec.split_messages(HAPROXY_DEFINITION + HAPROXY_UPDATE + HAPROXY_UPDATE_CACHED_NAME)
    assert used == len(HAPROXY_DEFINITION + HAPROXY_UPDATE + HAPROXY_UPDATE_CACHED_NAME)
    (_, kind, body), (_, _, first), (_, _, second) = messages
    assert kind == codec.DEFINITION
    definition = codec.decode_definition(body)
    assert (definition.table_id, definition.name, definition.key_kind, definition.key_length) == (1, "be", "ip", 4)
    assert definition.types == ("server_id", "gpc0", "conn_cnt", "http_req_rate", "server_key")
    assert (definition.expire_ms, definition.periods) == (30000, {"http_req_rate": 10000})
    names = codec.Names()
    update = codec.decode_update(definition, first, False, None, names)
    assert (update.update_id, update.key) == (4, "127.0.0.1")
    assert update.values == {"server_id": 7, "gpc0": 0, "conn_cnt": 1, "http_req_rate": (1, 1, 0),
                             "server_key": "s1"}
    # the second names the server by the id the first gave it
    assert codec.decode_update(definition, second, False, 4, names).values["server_key"] == "s1"
    assert codec.encode_definition(definition) == HAPROXY_DEFINITION
    assert codec.encode_update(definition, update) == HAPROXY_UPDATE


@given(st.integers(1, 40))
def test_messages_split_wherever_the_reads_cut(cut):
    stream = HAPROXY_DEFINITION + codec.control(codec.HEARTBEAT) + HAPROXY_UPDATE
    whole, _ = codec.split_messages(stream)
    got, buffer = [], b""
    for start in range(0, len(stream), cut):
        buffer += stream[start:start + cut]
        messages, used = codec.split_messages(buffer)
        got += messages
        buffer = buffer[used:]
    assert got == whole and buffer == b""


def test_hello_statuses():
    def status(text: str) -> tuple:
        return codec.read_hello(text.encode().split(b"\n"), "B", {"A"})

    assert status("HAProxyS 2.1\nB\nA 123 0") == (200, "A")
    assert status("HAProxyS 2.0\nB\nA 123 0") == (200, "A")  # same major version
    assert status("HAProxyS 3.0\nB\nA 1 0")[0] == codec.BAD_VERSION
    assert status("HTTP/1.1 GET\nB\nA 1 0")[0] == codec.BAD_PROTOCOL
    assert status("HAProxyS 2.1\nC\nA 1 0")[0] == codec.LOCAL_MISMATCH
    assert status("HAProxyS 2.1\nB\nZ 1 0")[0] == codec.REMOTE_MISMATCH
    assert codec.hello("B", "A", 42) == b"HAProxyS 2.1\nB\nA 42 0\n"


def _table(**spec) -> StickTable:
    table = StickTable(StickTableSpec("be", "ip", 100, expire=30.0, store=(
        ("conn_cnt", None), ("http_req_rate", 10.0), ("gpc0", None), ("conn_cur", None)), **spec))
    table.stores_server = True
    table.servers = [ServerState("be", "s1", "127.0.0.1", 1, 1, False, None, server_id=7),
                     ServerState("be", "s2", "127.0.0.1", 2, 1, False, None, server_id=9)]
    return table


def test_an_update_from_haproxy_fills_the_entry():
    table = _table()
    share = TableShare(table, 1)
    link = PeerLink("A", [share], now=100.0)
    answer = link.receive(HAPROXY_DEFINITION + HAPROXY_UPDATE, now=100.0)
    assert answer == codec.encode_ack(1, 4)  # its table id, its update number
    entry = table.entries["127.0.0.1"]
    assert (entry.server, entry.server_id, entry.expires) == ("s1", 7, 130.0)
    assert entry.data["conn_cnt"] == 1 and entry.data["http_req_rate"].value(100.0) == 1
    assert not share.changed  # learned, not pushed back
    # the rate keeps its period: it began 1 ms before; 10 s later it is the previous one
    assert entry.data["http_req_rate"].value(109.0) == 1 and entry.data["http_req_rate"].value(119.0) == 0


def test_conn_cur_is_never_learned_and_server_ids_stand_in_for_names():
    table = _table()
    share = TableShare(table, 1)
    definition = codec.Definition(3, "be", "ip", 4, ("server_id", "conn_cur"))
    update = codec.Update(1, "10.0.0.1", {"server_id": 9, "conn_cur": 5})
    PeerLink("A", [share], 0.0).receive(codec.encode_definition(definition)
                                        + codec.encode_update(definition, update), 0.0)
    entry = table.entries["10.0.0.1"]
    assert (entry.server, entry.data["conn_cur"]) == ("s2", 0)


def test_a_resync_request_gets_every_entry_then_finished():
    table = _table()
    share = TableShare(table, 1)
    table.store("10.0.0.1", table.servers[1], 5.0)
    table.place("10.0.0.2", 5.0)
    assert list(share.changed) == ["10.0.0.1", "10.0.0.2"]
    answer = PeerLink("A", [share], 5.0).receive(codec.control(codec.RESYNC_REQUEST), 6.0)
    messages, _ = codec.split_messages(answer)
    assert [kind for _, kind, _ in messages] == [codec.DEFINITION, codec.UPDATE, codec.UPDATE,
                                                  codec.RESYNC_FINISHED]
    definition = codec.decode_definition(messages[0][2])
    assert definition.types == ("server_id", "gpc0", "conn_cnt", "conn_cur", "http_req_rate", "server_key")
    first = codec.decode_update(definition, messages[1][2], False, None, codec.Names())
    assert (first.key, first.values["server_id"], first.values["server_key"]) == ("10.0.0.1", 9, "s2")
    assert first.values["http_req_rate"] == (1000, 0, 0)  # its period began a second ago


def test_a_session_answers_finished_resyncs_and_ends_on_nonsense():
    link = PeerLink("A", [TableShare(_table(), 1)], 0.0)
    assert link.receive(codec.control(codec.RESYNC_FINISHED), 1.0) == codec.control(codec.RESYNC_CONFIRM)
    assert link.synced
    assert link.receive(codec.control(codec.HEARTBEAT), 2.0) == b""
    assert link.heartbeat(3.9) == b"" and link.heartbeat(4.1) == codec.control(codec.HEARTBEAT)
    assert not link.dead(6.9) and link.dead(7.1)
    with pytest.raises(PeerProtocolError, match="before any table definition"):
        link.receive(HAPROXY_UPDATE, 3.0)
    with pytest.raises(PeerProtocolError, match="protocol error"):
        PeerLink("A", [], 0.0).receive(bytes((codec.ERROR, codec.PROTOCOL_ERROR)), 0.0)
    with pytest.raises(PeerProtocolError, match="unknown message class"):
        PeerLink("A", [], 0.0).receive(b"\x07\x00", 0.0)


def test_updates_of_tables_this_node_does_not_have_are_acknowledged_and_dropped():
    link = PeerLink("A", [TableShare(_table(), 1)], 0.0)
    other = codec.Definition(2, "elsewhere", "ip", 4, ("conn_cnt",))
    answer = link.receive(codec.encode_definition(other)
                          + codec.encode_update(other, codec.Update(8, "10.0.0.1", {"conn_cnt": 1})), 0.0)
    assert answer == codec.encode_ack(2, 8) and link.learned == 0


def test_a_node_without_every_entry_answers_partial_and_sends_empty_definitions():
    share = TableShare(_table(), 1)
    link = PeerLink("A", [share], 0.0, up_to_date=lambda: False)
    messages, _ = codec.split_messages(link.receive(codec.control(codec.RESYNC_REQUEST), 1.0))
    assert [(klass, kind) for klass, kind, _ in messages] == [
        (codec.TABLE, codec.DEFINITION), (codec.CONTROL, codec.RESYNC_PARTIAL)]
    # a partial resync from the peer is confirmed, but does not make this node up to date
    assert link.receive(codec.control(codec.RESYNC_PARTIAL), 2.0) == codec.control(codec.RESYNC_CONFIRM)
    assert not link.synced


def _pushed(data: bytes, definition: codec.Definition | None = None) -> list[tuple[int, str, int]]:
    """(update number, key, conn_cnt) of each update in what a link wrote."""
    messages, _ = codec.split_messages(data)
    found = []
    for _, kind, body in messages:
        if kind == codec.DEFINITION:
            definition = codec.decode_definition(body)
        elif kind == codec.UPDATE:
            update = codec.decode_update(definition, body, False, None, codec.Names())
            found.append((update.update_id, update.key, update.values["conn_cnt"]))
    return found


def _count(table: StickTable, key: str, now: float) -> None:
    """What a request does to its client's entry (conn_cnt one more)."""
    entry = table.track(key, now)
    entry.data["conn_cnt"] += 1
    table.release(entry, now)


def test_changes_get_numbers_and_a_key_changed_again_takes_a_new_one():
    table = _table()
    share = TableShare(table, 1)
    for key in ("10.0.0.1", "10.0.0.2", "10.0.0.1"):
        _count(table, key, 1.0)
    share.commit()  # one period: 10.0.0.1 changed twice is one update
    assert (share.update_id, list(share.numbered.items())) == (2, [("10.0.0.1", 1), ("10.0.0.2", 2)])
    _count(table, "10.0.0.1", 2.0)
    share.commit()
    assert list(share.numbered.items()) == [("10.0.0.2", 2), ("10.0.0.1", 3)]
    assert [(u.update_id, u.key, u.values["conn_cnt"]) for u in share.pending(1, 2.0)] == [
        (2, "10.0.0.2", 1), (3, "10.0.0.1", 3)]
    assert share.pending(3, 2.0) == []


def test_what_changed_while_no_session_was_up_goes_out_on_the_next_one():
    table = _table()
    share = TableShare(table, 1)
    first = PeerLink("A", [share], 0.0)
    _count(table, "10.0.0.1", 1.0)
    share.commit()
    assert _pushed(first.push_pending(1.0)) == [(1, "10.0.0.1", 1)]
    assert first.push_pending(1.1) == b""  # pushed once per session
    first.receive(codec.encode_ack(1, 1), 1.2)
    assert share.acked == {"A": 1}
    # the session ends; meanwhile clients come and go
    _count(table, "10.0.0.2", 2.0)
    _count(table, "10.0.0.1", 2.0)
    share.commit()
    # the next session starts after what A acknowledged
    second = PeerLink("A", [share], 3.0)
    assert _pushed(second.push_pending(3.0)) == [(2, "10.0.0.2", 1), (3, "10.0.0.1", 2)]


def test_updates_a_dead_session_pushed_but_the_peer_never_acknowledged_go_again():
    table = _table()
    share = TableShare(table, 1)
    link = PeerLink("A", [share], 0.0)
    for key in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        _count(table, key, 1.0)
        share.commit()
    assert [number for number, _, _ in _pushed(link.push_pending(1.0))] == [1, 2, 3]
    link.receive(codec.encode_ack(1, 1), 1.1)  # the session dies before the rest is acknowledged
    again = PeerLink("A", [share], 2.0)
    assert [key for _, key, _ in _pushed(again.push_pending(2.0))] == ["10.0.0.2", "10.0.0.3"]
    # an acknowledgement never takes the cursor back, and is per peer
    again.receive(codec.encode_ack(1, 3), 2.1)
    again.receive(codec.encode_ack(1, 2), 2.2)
    assert share.acked == {"A": 3}
    assert [key for _, key, _ in _pushed(PeerLink("C", [share], 3.0).push_pending(3.0))] == [
        "10.0.0.1", "10.0.0.2", "10.0.0.3"]  # a peer never connected gets every local change


def test_acknowledgements_carry_the_low_32_bits_of_the_numbers():
    table = _table()
    share = TableShare(table, 1)
    share.update_id = 0xFFFFFFFE
    link = PeerLink("A", [share], 0.0)
    for key in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        _count(table, key, 1.0)
        share.commit()
    assert [number for number, _, _ in _pushed(link.push_pending(1.0))] == [0xFFFFFFFF, 0, 1]
    link.receive(codec.encode_ack(1, 0), 1.1)
    assert share.acked == {"A": 1 << 32}
    assert [key for _, key, _ in _pushed(PeerLink("A", [share], 2.0).push_pending(2.0))] == ["10.0.0.3"]


def test_a_peer_update_replaces_a_local_change_not_pushed_yet():
    table = _table()
    share = TableShare(table, 1)
    link = PeerLink("A", [share], 0.0)
    _count(table, "127.0.0.1", 1.0)
    _count(table, "10.0.0.9", 1.0)
    link.receive(HAPROXY_DEFINITION + HAPROXY_UPDATE, 1.0)  # 127.0.0.1, conn_cnt 1, from the peer
    share.commit()
    assert [key for _, key, _ in _pushed(link.push_pending(1.1))] == ["10.0.0.9"]
    assert table.entries["127.0.0.1"].data["conn_cnt"] == 1


def test_a_resync_carries_the_pending_changes_and_they_are_not_pushed_again():
    table = _table()
    share = TableShare(table, 1)
    _count(table, "10.0.0.1", 1.0)
    share.commit()
    link = PeerLink("A", [share], 1.0)
    taught = link.receive(codec.control(codec.RESYNC_REQUEST), 1.0)
    assert _pushed(taught) == [(1, "10.0.0.1", 1)]
    assert link.push_pending(1.1) == b""


def test_keys_of_entries_gone_are_not_pushed_and_not_kept():
    table = _table()
    share = TableShare(table, 1)
    for number in range(100):
        _count(table, f"10.0.1.{number}", 1.0)
    share.commit()
    for number in range(99):
        del table.entries[f"10.0.1.{number}"]
    assert [key for _, key, _ in _pushed(PeerLink("A", [share], 2.0).push_pending(2.0))] == ["10.0.1.99"]
    _count(table, "10.0.2.1", 2.0)
    share.commit()
    assert list(share.numbered) == ["10.0.1.99", "10.0.2.1"]


class _Transport:
    """A connection; a reset one closes when written to, as asyncio's does
    when the send fails."""

    def __init__(self, reset: bool):
        self.reset, self.closing, self.written = reset, False, b""

    def write(self, data: bytes) -> None:
        self.written += data
        self.closing = self.closing or self.reset

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


class _Service:
    """What a session needs of its service during the handshake."""

    def __init__(self):
        self.name, self.remotes, self.synced, self.kept = "B", {"A": None}, True, []
        self.loop = type("Loop", (), {"time": staticmethod(lambda: 1.0)})()
        self.section = type("Section", (), {"name": "lbs"})()

    def established(self, session, name, now):
        self.kept.append(session)
        return PeerLink(name, [], now)


@pytest.mark.parametrize("gone", [False, True])
def test_a_hello_on_a_connection_already_gone_does_not_replace_the_session(gone):
    from haply.peers.service import _Session
    service = _Service()
    session = _Session(service, None)
    # gone: the peer reset the connection right after its hello
    session.connection_made(_Transport(reset=gone))
    session.data_received(codec.hello("B", "A", 42))
    assert session.transport.written == b"200\n"
    assert service.kept == ([] if gone else [session])
