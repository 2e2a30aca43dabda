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
