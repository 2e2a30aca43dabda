"""The peers of one `peers` section, over TCP: the I/O around haply.peers.sync.

The service listens on the local peer's address and keeps one session with
every other peer, connecting to those it has none with (again 50 to 2050 ms
after a session ends, as HAProxy waits, so that two peers do not keep
crossing). A session begins with the hello/status handshake
(haply.peers.codec); when both sides connected at once, the one that arrived
last stays. Once connected to a peer, a starting node asks it for every
entry (a resync), which is how a node that restarted learns the clients'
servers back. Every 100 ms, the entries that changed are numbered
(haply.peers.sync) and every peer with a session is sent the updates it has
not acknowledged, so a peer whose session was down gets them once it is
back. A worker that stops teaches every entry to the one that replaces it
(listening on the same address: a reload), as HAProxy's old process does.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
import random
import socket
import sys
import time

from haply.peers import codec
from haply.peers.sync import PeerLink, TableShare

PUSH_EVERY = 0.1  # seconds between two pushes of the changed entries
CHECK_EVERY = 1.0  # heartbeats and dead sessions
RESYNC_WAIT = 5.0  # a node no peer finished a resync for is up to date after this


@dataclass
class PeerStatus:
    """What `show peers` says of one peer (HAProxy's field names)."""

    last_status: str = "NONE"  # NONE, CONN, ESTA, TOUT (silent), LERR (protocol error), RERR (refused)
    last_handshake: float | None = None
    new_conn: int = 0
    proto_err: int = 0


def local_name(configured: str | None) -> str:
    return configured or socket.gethostname()


def _warn(message: str) -> None:
    print(f"[WARNING] {message}", file=sys.stderr)


class _Session(asyncio.Protocol):
    """One TCP connection with a peer: the handshake, then a PeerLink."""

    def __init__(self, service: "PeersService", outgoing: str | None):
        self.service = service
        self.outgoing = outgoing  # the peer we connected to; None: it connected to us
        self.transport = None
        self.pending = b""
        self.link: PeerLink | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.outgoing is not None:
            transport.write(codec.hello(self.outgoing, self.service.name, os.getpid()))

    def data_received(self, data: bytes) -> None:
        service = self.service
        now = service.loop.time()
        if self.link is None:
            self.pending += data
            if not self._handshake(now):
                return
            self.link_made()
            data, self.pending = self.pending, b""
            if not data:
                return
        try:
            answer = self.link.receive(data, now)
        except codec.PeerProtocolError as error:
            service.note(self.link.name, "LERR", protocol_error=True)
            _warn(f"peers {service.section.name}: peer '{self.link.name}': {error}; closing the session")
            self.transport.write(bytes((codec.ERROR, codec.PROTOCOL_ERROR)))
            self.transport.close()
            return
        if answer:
            self.transport.write(answer)
        if self.link.synced:
            service.synced = True

    def _handshake(self, now: float) -> bool:
        """Whether the handshake is over and a link made (what follows it in
        pending is the link's)."""
        service = self.service
        if self.outgoing is not None:
            end = self.pending.find(b"\n")
            if end < 0:
                return False
            status, self.pending = self.pending[:end], self.pending[end + 1:]
            if status != b"200":
                self.service.note(self.outgoing, "RERR")
                _warn(f"peers {service.section.name}: peer '{self.outgoing}' refused the session "
                      f"(status {status.decode('ascii', 'replace')})")
                self.transport.close()
                return False
            self.link = service.established(self, self.outgoing, now)
            return True
        if self.pending.count(b"\n") < 3:
            if len(self.pending) > 1024:
                self.transport.close()
            return False
        first, second, third, self.pending = self.pending.split(b"\n", 3)
        # (a hello from this node's own name is the process it replaces, teaching it)
        status, name = codec.read_hello([first, second, third], service.name,
                                        {*service.remotes, service.name})
        self.transport.write(b"%d\n" % status)
        # a peer may drop a connection right after its hello (HAProxy does
        # when its own session won meanwhile): one that cannot even take the
        # status must not replace the session that works
        if name is None or self.transport.is_closing():
            self.transport.close()
            return False
        self.link = service.established(self, name, now)
        return True

    def link_made(self) -> None:
        """A node that does not have every entry yet asks the peer for them,
        whichever side connected (HAProxy asks from both); the updates the
        peer has not acknowledged go at once."""
        if not self.service.synced and self.link.name != self.service.name:
            self.transport.write(codec.control(codec.RESYNC_REQUEST))
        self.write(self.link.push_pending(self.service.loop.time()))

    def connection_lost(self, exc) -> None:
        self.service.lost(self)

    def write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class PeersService:
    """The sessions of one peers section for the tables that name it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, section, name: str, tables: list):
        self.loop = loop
        self.section = section
        self.name = name
        self.shares = [TableShare(table, number) for number, table in enumerate(tables, start=1)]
        self.remotes = {peer.name: peer for peer in section.peers if peer.name != name}
        local = section.peer(name)
        self.address = section.bind if section.bind is not None else (
            (local.host, local.port) if local is not None else None)
        self.sessions: dict[str, _Session] = {}  # established, by peer name
        self.status = {name: PeerStatus() for name in self.remotes}
        self.connecting: dict[str, asyncio.TimerHandle | asyncio.Task] = {}
        # every entry is here: a peer finished a resync for this node, or
        # none did within RESYNC_WAIT of the start (HAProxy's rule)
        self.synced = False
        self.started_at = loop.time()
        self.server: asyncio.AbstractServer | None = None
        self.tasks: list[asyncio.Task] = []
        self.stopped = False

    async def start(self) -> None:
        if self.address is not None:
            host, port = self.address
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # a worker replacing this one binds the same address meanwhile
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            self.server = await self.loop.create_server(lambda: _Session(self, None), sock=sock)
        for name in self.remotes:
            self._connect_later(name, 0.0)
        self.tasks.append(self.loop.create_task(self._push_loop()))

    def _connect_later(self, name: str, delay: float) -> None:
        if self.stopped or name in self.sessions or name in self.connecting:
            return
        self.connecting[name] = self.loop.call_later(delay, self._connect, name)

    def _connect(self, name: str) -> None:
        peer = self.remotes[name]
        status = self.status[name]
        status.new_conn += 1
        status.last_status = "CONN"

        async def connect() -> None:
            try:
                await self.loop.create_connection(lambda: _Session(self, name), peer.host, peer.port)
            except OSError:
                self.connecting.pop(name, None)
                self._connect_later(name, 0.05 + random.random() * 2.0)
                return
            self.connecting.pop(name, None)

        self.connecting[name] = self.loop.create_task(connect())

    def established(self, session: _Session, name: str, now: float) -> PeerLink:
        """A handshake succeeded: the newest session with a peer is the one kept."""
        previous = self.sessions.get(name)
        self.sessions[name] = session
        status = self.status.get(name)
        if status is not None:
            status.last_status, status.last_handshake = "ESTA", now
        if previous is not None and previous is not session and previous.transport is not None:
            previous.link = None  # its loss must not drop the new one
            previous.transport.close()
        return PeerLink(name, self.shares, now, lambda: self.synced)

    def describe(self, now: float, wall: float) -> str:
        """`show peers`: the section, then each peer (HAProxy's layout and
        field names, for the fields haply keeps; last_hdshk is how long ago)."""
        started = time.strftime("%d/%b/%Y:%H:%M:%S", time.localtime(wall - (now - self.started_at)))
        lines = [f"0x{id(self):x}: [{started}] id={self.section.name} disabled=0 "
                 f"local={self.name} synced={int(self.synced)}"]
        for peer in self.section.peers:
            if peer.name == self.name:
                host, port = self.address or (peer.host, peer.port)
                lines.append(f"  0x{id(peer):x}: id={peer.name}(local,inactive) addr={host}:{port}")
                continue
            status = self.status[peer.name]
            session = self.sessions.get(peer.name)
            link = session.link if session is not None else None
            since = "<NEVER>" if status.last_handshake is None else f"{int(now - status.last_handshake)}s"
            lines.append(f"  0x{id(peer):x}: id={peer.name}(remote,{'active' if link else 'inactive'}) "
                         f"addr={peer.host}:{peer.port} last_status={status.last_status} last_hdshk={since}")
            lines.append(f"        new_conn={status.new_conn} proto_err={status.proto_err} "
                         f"tx_hbt={link.tx_hbt if link else 0} rx_hbt={link.rx_hbt if link else 0} "
                         f"learned={link.learned if link else 0} pushed={link.pushed if link else 0}")
            lines.append("        shared tables:")
            for share in self.shares:
                definition = share.definition
                remote = next((d.table_id for d in (link.remote.values() if link else ())
                               if d.name == definition.name), 0)
                last_get = link.last_update.get(remote, 0) if link else 0
                last_pushed = link.last_pushed[definition.table_id] if link else 0
                # (every update is acknowledged as it arrives: last_acked is last_get)
                lines.append(f"          0x{id(share):x} local_id={definition.table_id} remote_id={remote} "
                             f"last_acked={last_get} last_pushed={last_pushed} last_get={last_get} "
                             f"update={share.acked.get(peer.name, 0)} localupdate={share.update_id} "
                             f"table={definition.name} used={len(share.table.entries)}")
        return "\n".join(lines) + "\n"

    def note(self, name: str, last_status: str, protocol_error: bool = False) -> None:
        status = self.status.get(name)
        if status is not None:
            status.last_status = last_status
            status.proto_err += protocol_error

    def lost(self, session: _Session) -> None:
        for name, known in list(self.sessions.items()):
            if known is session:
                del self.sessions[name]
                self.synced = self.synced or (session.link is not None and session.link.synced)
        name = session.outgoing
        if name is None and session.link is not None:
            name = session.link.name
        if name in self.remotes and name not in self.sessions:
            self._connect_later(name, 0.05 + random.random() * 2.0)

    async def _push_loop(self) -> None:
        checked = self.loop.time()
        while not self.stopped:
            await asyncio.sleep(PUSH_EVERY)
            now = self.loop.time()
            self.push(now)
            if now - checked >= CHECK_EVERY:
                checked = now
                self.check(now)

    def push(self, now: float) -> None:
        """Number the changed entries and send every peer with a session what
        it lacks (a peer without one gets it once it has one)."""
        for share in self.shares:
            share.commit()
        for session in list(self.sessions.values()):
            if session.link is not None:
                session.write(session.link.push_pending(now))

    def check(self, now: float) -> None:
        if not self.synced and now - self.started_at >= RESYNC_WAIT:
            self.synced = True
        for session in list(self.sessions.values()):
            link = session.link
            if link is None:
                continue
            if link.synced:
                self.synced = True
            if link.dead(now):
                self.note(link.name, "TOUT")
                _warn(f"peers {self.section.name}: peer '{link.name}' silent for "
                      f"{now - link.received_at:.1f} s; closing the session")
                session.transport.close()
            else:
                session.write(link.heartbeat(now))

    async def stop(self) -> None:
        self.stopped = True
        for task in self.tasks:
            task.cancel()
        for pending in self.connecting.values():
            pending.cancel()
        self.connecting.clear()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        # what changed last goes out before the sessions close
        self.push(self.loop.time())
        for session in list(self.sessions.values()):
            if session.transport is not None:
                session.transport.close()
        await self._teach_successor()

    async def _teach_successor(self) -> None:
        """A process replacing this one (a reload) listens on the same
        address: it is taught every entry, as HAProxy's old process teaches
        its new one. Nobody listening there: nothing to do."""
        if self.address is None or not any(share.table.entries for share in self.shares):
            return
        host, port = self.address
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
            writer.write(codec.hello(self.name, self.name, os.getpid()))
            status = await asyncio.wait_for(reader.readline(), 1.0)
            if status.strip() != b"%d" % codec.SUCCEEDED:
                return
            now = self.loop.time()
            writer.write(PeerLink(self.name, self.shares, now).teach(now)
                         + codec.control(codec.RESYNC_FINISHED))
            await writer.drain()
            await asyncio.wait_for(reader.read(2), 1.0)  # its confirmation
        except (OSError, asyncio.TimeoutError):
            return
        finally:
            if writer is not None:
                writer.close()


def services_for(config, tables: dict, loop, name: str | None) -> list[PeersService]:
    """One service per peers section that shared tables name; a section
    without the local peer is left out with a warning (as HAProxy drops it)."""
    local = local_name(name or config.global_.localpeer)
    services = []
    for section in config.peers:
        shared = [table for table in tables.values() if table.spec.peers == section.name]
        if section.disabled or not shared:
            continue
        if section.peer(local) is None and section.bind is None:
            _warn(f"peers section '{section.name}' has no peer named '{local}' (the local peer: "
                  "set localpeer or -L): its tables are not shared")
            continue
        services.append(PeersService(loop, section, local, shared))
    return services
