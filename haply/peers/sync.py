"""What a session with one peer does once the handshake is over, without I/O.

`TableShare` is a stick table as this node shares it: the definition it
announces, its numbered local changes, what each peer acknowledged of them,
and how an update from a peer becomes an entry here. `PeerLink` is one
established session: it reads the peer's messages (answering a resync
request with every entry, acknowledging updates, confirming a finished
resync, noting the peer's acknowledgements), writes the updates the peer
lacks, sends a heartbeat after 3 s of silence and says the session is dead
after 5 s without a message from the peer, as HAProxy does.

Updates are not lost with a session, as in HAProxy: every local change gets
the next number of its table's sequence (a key changed again takes a new
number), the peer acknowledges what it received, and each peer's last
acknowledged number outlives its sessions. A new session with a peer starts
pushing after that number, so whatever changed while no session was up, or
went out on a session that died before the peer acknowledged it, goes out
again; a peer never connected before gets every local change still in the
table.

As in HAProxy, what a peer pushes overwrites the entry here (no sum), the
count of current connections (`conn_cur`) is never learned, and an entry
learned from a peer is not pushed again. Servers are known by their name
(`server_key`) when the peer sends it, else by their numeric id: give the
servers the same ids on every node (`id N`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from haply.peers import codec
from haply.peers.codec import Definition, PeerProtocolError, Update
from haply.proxy.counters import Rate, new_data
from haply.proxy.stick import Entry

HEARTBEAT_AFTER = 3.0  # seconds of silence before a heartbeat
DEAD_AFTER = 5.0  # seconds without a message: the peer is gone

_KEY_LENGTHS = {"ip": 4, "ipv6": 16, "integer": 4}


class TableShare:
    """A stick table (haply.proxy.stick.StickTable) shared with peers."""

    def __init__(self, table, table_id: int):
        self.table = table
        spec = table.spec
        types = {name for name, _ in spec.store if name in codec.BIT}
        if table.stores_server:
            types |= {"server_id", "server_key"}
        periods = {name: int(round(period * 1000)) for name, period in spec.store
                   if period is not None and name in codec.BIT}
        self.definition = Definition(
            table_id, spec.name, spec.kind, _KEY_LENGTHS.get(spec.kind, spec.length),
            tuple(sorted(types, key=codec.BIT.__getitem__)),
            int((spec.expire or 0) * 1000), periods)
        # keys changed here since the last commit, in order (a dict as an
        # ordered set): all the request path does is mark a key here
        self.changed: dict[str, None] = {}
        self.update_id = 0  # the last number given to a local change
        # each key's latest local change by number, oldest first; a key
        # learned from a peer since is not here (it is not pushed again)
        self.numbered: OrderedDict[str, int] = OrderedDict()
        # the last number each peer acknowledged, by peer name, across sessions
        self.acked: dict[str, int] = {}
        table.share = self

    def values(self, entry, now: float) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in self.definition.types:
            if name == "server_id":
                out[name] = entry.server_id if entry.server is not None else 0
            elif name == "server_key":
                out[name] = entry.server
            else:
                value = entry.data.get(name)
                if value.__class__ is Rate:
                    value.value(now)  # turns its periods up to now
                    out[name] = (int((now - value.start) * 1000), value.current, value.previous)
                else:
                    out[name] = value or 0
        return out

    def commit(self) -> None:
        """Number the keys changed since the last commit (one push period's
        worth: a key changed many times in it is one update)."""
        if not self.changed:
            return
        numbered = self.numbered
        for key in self.changed:
            self.update_id += 1
            numbered.pop(key, None)
            numbered[key] = self.update_id
        self.changed = {}
        # keys whose entry expired or was dropped are forgotten here, now and
        # then, so that a table with a turnover of keys does not grow this
        if len(numbered) > 2 * len(self.table.entries) + 64:
            entries = self.table.entries
            self.numbered = OrderedDict((key, number) for key, number in numbered.items()
                                        if key in entries)

    def pending(self, after: int, now: float) -> list[Update]:
        """The updates of the local changes numbered after `after`, oldest
        first, with the entries' values now."""
        entries = self.table.entries
        found = []
        for key, number in reversed(self.numbered.items()):
            if number <= after:
                break
            entry = entries.get(key)
            if entry is not None:
                found.append(Update(number, key, self.values(entry, now)))
        found.reverse()
        return found

    def everything(self, now: float) -> list[Update]:
        """Every entry, for a resync: a local change keeps its number, an
        entry learned from a peer goes with the last number given."""
        numbered = self.numbered
        return [Update(numbered.get(key, self.update_id), key, self.values(entry, now))
                for key, entry in self.table.entries.items()]

    def acknowledged(self, peer: str, number: int) -> None:
        if number > self.acked.get(peer, 0):
            self.acked[peer] = number

    def apply(self, update: Update, now: float) -> None:
        """A peer's update: the entry takes its values (made if needed), its
        expiry starts again; this does not count as a change to push."""
        table = self.table
        key = table.normalise(update.key)
        if key is None:
            return
        # the peer's values replace a local change not pushed yet, which
        # then is not pushed at all (the peer's update is the entry's last)
        self.changed.pop(key, None)
        self.numbered.pop(key, None)
        entry = table.lookup(key, now)
        if entry is None:
            entry = table._add(key, Entry(None, 0, None, new_data(table.spec.store, now)), now)
            if entry is None:
                return  # a full nopurge table
        else:
            table.entries.move_to_end(key)
        values = update.values
        server = _server(table.servers, values.get("server_key"), values.get("server_id"))
        if server is not None:
            entry.server, entry.server_id = server.name, server.server_id
        for name, value in values.items():
            current = entry.data.get(name)
            if current is None or name == "conn_cur":
                continue
            if current.__class__ is Rate:
                elapsed, count, previous = value
                current.restore(now, elapsed / 1000, count, previous)
            else:
                entry.data[name] = value
        if update.expire_ms is not None:
            entry.expires = now + update.expire_ms / 1000
        elif table.expire is not None:
            entry.expires = now + table.expire


def _server(servers, name: str | None, server_id: int | None):
    if name:
        for server in servers:
            if server.name == name:
                return server
    if server_id:
        for server in servers:
            if server.server_id == server_id:
                return server
    return None


class PeerLink:
    """One established session with a peer (after the handshake)."""

    def __init__(self, name: str, shares: list[TableShare], now: float,
                 up_to_date: Callable[[], bool] = lambda: True):
        self.name = name
        # whether this node has every entry (answers a resync with "finished"
        # rather than "partial", so that the peer does not ask another one)
        self.up_to_date = up_to_date
        self.shares = {share.definition.name: share for share in shares}
        self.local_ids = {share.definition.table_id: share for share in shares}
        # per local table id: the last update pushed on this session, from
        # the last the peer acknowledged on any session (HAProxy's
        # last_pushed and update)
        self.last_pushed = {table_id: share.acked.get(name, 0) for table_id, share in self.local_ids.items()}
        self.buffer = b""
        self.remote: dict[int, Definition] = {}  # the peer's tables, by its ids
        self.current: Definition | None = None  # the table its updates are for
        self.last_update: dict[int, int] = {}  # the peer's last update number per table
        self.names = codec.Names()
        self.received_at = self.sent_at = now
        self.synced = False  # a resync from this peer finished
        self.learned = 0  # updates applied from this peer
        self.pushed = 0  # updates sent to it
        self.tx_hbt = self.rx_hbt = 0  # heartbeats sent and received (show peers)

    # ------------------------------------------------------------- reading

    def receive(self, data: bytes, now: float) -> bytes:
        """Take the peer's bytes; what to answer (acknowledgements, a
        resync, confirmations). PeerProtocolError ends the session."""
        self.received_at = now
        self.buffer += data
        messages, used = codec.split_messages(self.buffer)
        self.buffer = self.buffer[used:]
        out: list[bytes] = []
        acked: dict[int, int] = {}
        for klass, kind, body in messages:
            if klass == codec.CONTROL:
                if kind == codec.RESYNC_REQUEST:
                    out.append(self.teach(now))
                    out.append(codec.control(codec.RESYNC_FINISHED if self.up_to_date()
                                             else codec.RESYNC_PARTIAL))
                elif kind in (codec.RESYNC_FINISHED, codec.RESYNC_PARTIAL):
                    self.synced = self.synced or kind == codec.RESYNC_FINISHED
                    out.append(codec.control(codec.RESYNC_CONFIRM))
                elif kind == codec.HEARTBEAT:
                    self.rx_hbt += 1
                elif kind != codec.RESYNC_CONFIRM:
                    raise PeerProtocolError(f"unknown control message {kind}")
            elif klass == codec.ERROR:
                raise PeerProtocolError("the peer reported " + (
                    "a protocol error" if kind == codec.PROTOCOL_ERROR else "a message too large"))
            elif klass == codec.TABLE:
                table_id = self._table_message(kind, body, now)
                if table_id is not None:
                    acked[table_id] = self.last_update[table_id]
            else:
                raise PeerProtocolError(f"unknown message class {klass}")
        for table_id, update_id in acked.items():
            out.append(codec.encode_ack(table_id, update_id))
        if out:
            self.sent_at = now
        return b"".join(out)

    def _table_message(self, kind: int, body: bytes, now: float) -> int | None:
        """A stick-table message; the peer's table id when it was an update."""
        if kind == codec.DEFINITION:
            definition = codec.decode_definition(body)
            self.remote[definition.table_id] = self.current = definition
            return None
        if kind == codec.SWITCH:
            table_id, _ = codec.decode_int(body, 0)
            self.current = self.remote.get(table_id)
            if self.current is None:
                raise PeerProtocolError(f"switch to table {table_id}, never defined")
            return None
        if kind == codec.ACK:
            table_id, update_id = codec.decode_ack(body)
            share = self.local_ids.get(table_id)
            if share is not None:
                pushed = self.last_pushed[table_id]
                # numbers travel as their low 32 bits: the one meant is the
                # latest pushed number that ends so
                share.acknowledged(self.name, pushed - ((pushed - update_id) & 0xFFFFFFFF))
            return None
        if kind in (codec.UPDATE, codec.INCREMENTAL_UPDATE, codec.UPDATE_TIMED,
                    codec.INCREMENTAL_UPDATE_TIMED):
            definition = self.current
            if definition is None:
                raise PeerProtocolError("an update before any table definition")
            table_id = definition.table_id
            update = codec.decode_update(
                definition, body, kind in (codec.UPDATE_TIMED, codec.INCREMENTAL_UPDATE_TIMED),
                self.last_update.get(table_id), self.names,
                incremental=kind in (codec.INCREMENTAL_UPDATE, codec.INCREMENTAL_UPDATE_TIMED))
            self.last_update[table_id] = update.update_id
            share = self.shares.get(definition.name)
            if share is not None and share.definition.key_kind == definition.key_kind:
                share.apply(update, now)
                self.learned += 1
            return table_id
        raise PeerProtocolError(f"unknown stick-table message type {kind}")

    # ------------------------------------------------------------- writing

    def push_pending(self, now: float) -> bytes:
        """The local changes this session has not pushed yet, table by table
        (nothing to do costs a comparison per table)."""
        out = []
        for table_id, share in self.local_ids.items():
            after = self.last_pushed[table_id]
            if share.update_id > after:
                out.append(self.push(share, share.pending(after, now), now))
                self.last_pushed[table_id] = share.update_id
        return b"".join(out)

    def push(self, share: TableShare, updates: list[Update], now: float, always: bool = False) -> bytes:
        """Updates of one table, after its definition (the definition alone
        when `always` and there is no update: a resync of an empty table)."""
        if not updates and not always:
            return b""
        # the definition goes before every batch, as HAProxy sends it (its
        # documentation calls the switch message unused)
        definition = share.definition
        out = [codec.encode_definition(definition)]
        out += [codec.encode_update(definition, update) for update in updates]
        self.pushed += len(updates)
        self.sent_at = now
        return b"".join(out)

    def teach(self, now: float) -> bytes:
        """Every entry of every shared table (a resync asked for); each
        table's definition comes even when it has no entry, as HAProxy sends it.
        What it carries need not be pushed again on this session."""
        out = []
        for table_id, share in self.local_ids.items():
            out.append(self.push(share, share.everything(now), now, always=True))
            self.last_pushed[table_id] = max(self.last_pushed[table_id], share.update_id)
        return b"".join(out)

    def heartbeat(self, now: float) -> bytes:
        if now - self.sent_at < HEARTBEAT_AFTER:
            return b""
        self.sent_at = now
        self.tx_hbt += 1
        return codec.control(codec.HEARTBEAT)

    def dead(self, now: float) -> bool:
        return now - self.received_at > DEAD_AFTER
