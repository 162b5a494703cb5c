"""Ports for tests: which TCP ports a process listens on (read from Linux's /proc, no extra
package), and a port from the OS where connections are refused."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_LISTEN = "0A"  # the state column of /proc/net/tcp


def listening_ports(pid: int) -> set[int]:
    """The TCP ports (IPv4 and IPv6) that ``pid`` holds a listening socket on."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue  # closed since the listing
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and inode in inodes:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port from the OS that refuses connections: bound and held, never listening,
    so nothing else can take it while the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
