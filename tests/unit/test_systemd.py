"""haply.systemd against a real AF_UNIX datagram socket bound by the test,
as systemd binds its notification socket."""

import os
import socket
import time
import uuid

import pytest

from haply import systemd


@pytest.fixture
def receiver(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    try:
        yield path, sock
    finally:
        sock.close()


@pytest.fixture
def abstract_receiver():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"haply-test-{uuid.uuid4().hex}"
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        yield "@" + name, sock
    finally:
        sock.close()


@pytest.fixture(autouse=True)
def fresh_default(monkeypatch):
    monkeypatch.setattr(systemd, "_default", None)
    yield
    if systemd._default is not None:
        systemd._default.close()


def test_ready_and_status_in_one_datagram(receiver, monkeypatch):
    path, sock = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.notify(systemd.READY, systemd.status("serving\n2 frontends"))
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving 2 frontends"


def test_abstract_namespace(abstract_receiver, monkeypatch):
    name, sock = abstract_receiver
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    assert systemd.notify(systemd.STOPPING)
    assert sock.recv(4096) == b"STOPPING=1"


def test_reloading_carries_monotonic_usec(receiver, monkeypatch):
    path, sock = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert systemd.notify(*systemd.reloading())
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = sock.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    assert before <= int(lines[1].split("=", 1)[1]) <= after
    assert systemd.reloading(42) == ("RELOADING=1", "MONOTONIC_USEC=42")


def test_mainpid(receiver, monkeypatch):
    path, sock = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.notify(systemd.mainpid(os.getpid()), systemd.READY)
    assert sock.recv(4096) == f"MAINPID={os.getpid()}\nREADY=1".encode()


def test_no_socket_is_not_an_error(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify(systemd.READY) is False
    assert not systemd.booted_by_systemd({})
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd.notify(systemd.READY) is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert systemd.notify(systemd.READY) is False


def test_connected_socket_survives_the_name_disappearing(receiver):
    """What chroot does to a path name: the connected socket still delivers."""
    path, sock = receiver
    notifier = systemd.Notifier(path)
    try:
        assert notifier.open()
        os.unlink(path)  # the name is gone, as it is after chroot
        assert notifier.send(systemd.READY)
        assert sock.recv(4096) == b"READY=1"
    finally:
        notifier.close()


def test_environment_change_is_followed(receiver, abstract_receiver, monkeypatch):
    path, sock = receiver
    name, abstract = abstract_receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.notify(systemd.READY)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    assert systemd.notify(systemd.STOPPING)
    assert sock.recv(4096) == b"READY=1"
    assert abstract.recv(4096) == b"STOPPING=1"


def test_notification_from_a_child_process(receiver, monkeypatch):
    """The datagram carries the sender's credentials; systemd reads them, so
    a forked child must send from its own process (no socket shared by mistake
    breaks that: the kernel fills in the sender at send time)."""
    path, sock = receiver
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if systemd.notify(systemd.READY) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    assert data == b"READY=1"
    level, kind, creds = ancillary[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
    assert int.from_bytes(creds[:4], "little") == pid
