"""Child processes of the local stack: start, watch, stop, and fail with a clear message."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StackError(RuntimeError):
    """A fault of the local stack, phrased for the person who ran it."""


class PortInUse(StackError):
    pass


class ServiceDied(StackError):
    pass


class NotReady(StackError):
    pass


class MissingDependency(StackError):
    pass


def ensure_port_free(name: str, host: str, port: int) -> None:
    """Fail before spawning anything if the port is taken, naming who wanted it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As servers do: a port held only by TIME_WAIT leftovers is free; a listener is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise PortInUse(
                f"{name}: port {port} on {host} is already in use ({e.strerror}). "
                "Is another `make dev` (or another emulator) running? Stop it, or point "
                f"the stack at the running one with the *_EMULATOR_HOST variables."
            ) from e


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no output)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(no output)"


@dataclass
class ManagedProcess:
    """A child in its own process group, its output in a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    cwd: Path
    env: Mapping[str, str]
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.log_path.open("wb") as log:
                # A new session makes the child a group leader, so stop() also reaches
                # grandchildren (firebase-tools runs the emulator in child processes).
                self.popen = subprocess.Popen(
                    list(self.argv),
                    cwd=self.cwd,
                    env=dict(self.env),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except FileNotFoundError as e:
            raise MissingDependency(
                f"{self.name}: cannot run {self.argv[0]!r} ({e.strerror}). "
                "Run `make dev` or `make test`, which install what is missing."
            ) from e

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise StackError(f"{self.name} was never started")
        return self.popen.pid

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def check_alive(self) -> None:
        code = self.exit_code()
        if code is not None:
            raise ServiceDied(
                f"{self.name} exited with code {code}. Its last output "
                f"({self.log_path}):\n{log_tail(self.log_path)}"
            )

    def stop(self, grace: float = 5.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.popen.wait(timeout=grace)

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group may already be gone between poll() and here; that is the goal anyway.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)


def wait_ready(
    proc: ManagedProcess | None,
    name: str,
    probe: Callable[[], bool],
    timeout: float,
    interval: float = 0.1,
) -> float:
    """Poll `probe` until it answers; fail fast if the process dies. Returns seconds taken."""
    start = time.monotonic()
    deadline = start + timeout
    last_error = "no answer yet"
    while True:
        if proc is not None:
            proc.check_alive()
        try:
            if probe():
                return time.monotonic() - start
        except OSError as e:
            last_error = str(e)
        if time.monotonic() >= deadline:
            where = f" Its output is in {proc.log_path}." if proc is not None else ""
            raise NotReady(f"{name} did not answer within {timeout:.0f} s ({last_error}).{where}")
        time.sleep(interval)
