"""The process runner fails loudly and specifically: taken port, dead child, missing binary."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from devstack.procs import (
    ManagedProcess,
    MissingDependency,
    NotReady,
    PortInUse,
    ServiceDied,
    ensure_port_free,
    wait_ready,
)


def _proc(tmp_path: Path, code: str, name: str = "child") -> ManagedProcess:
    return ManagedProcess(
        name, [sys.executable, "-c", code], tmp_path / f"{name}.log", tmp_path, dict(os.environ)
    )


def test_taken_port_is_reported_with_the_service_name() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"firestore emulator: port {port} .* already in use"):
            ensure_port_free("firestore emulator", "127.0.0.1", port)


def test_free_port_passes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ensure_port_free("x", "127.0.0.1", port)


def test_a_child_that_dies_while_starting_is_reported_with_its_output(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "import sys; print('cannot bind: boom'); sys.exit(3)", "pubsub emulator")
    proc.start()
    with pytest.raises(ServiceDied, match=r"pubsub emulator exited with code 3") as info:
        wait_ready(proc, "pubsub emulator", lambda: False, timeout=30)
    assert "cannot bind: boom" in str(info.value)


def test_a_child_that_never_answers_times_out_with_a_clear_message(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "import time; time.sleep(60)")
    proc.start()
    try:
        with pytest.raises(NotReady, match=r"slow thing did not answer within 1 s"):
            wait_ready(proc, "slow thing", lambda: False, timeout=1)
    finally:
        proc.stop()
    assert proc.exit_code() is not None


def test_ready_returns_once_the_probe_answers(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "import time; time.sleep(60)")
    proc.start()
    answers = [False, False, True]
    try:
        wait_ready(proc, "x", lambda: answers.pop(0), timeout=10, interval=0.01)
    finally:
        proc.stop()
    assert answers == [], "it returns on the first answer, not before"


def test_a_missing_binary_names_itself(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "auth emulator", ["/nonexistent/firebase"], tmp_path / "a.log", tmp_path, {}
    )
    with pytest.raises(
        MissingDependency, match=r"auth emulator: cannot run '/nonexistent/firebase'"
    ):
        proc.start()


def test_stop_reaches_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    proc = _proc(tmp_path, code)
    proc.start()
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the child never started its own child"
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    proc.stop()
    deadline = time.monotonic() + 5
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived stop()"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it holds no port and runs no code.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
