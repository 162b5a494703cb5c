"""The three emulators of the local stack: Firebase Auth, Firestore, Pub/Sub.

Each is started only when its `*_EMULATOR_HOST` variable is not already set; a set variable
means "use that one", and it must answer (DESIGN §6).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from devstack import probes
from devstack.procs import (
    ManagedProcess,
    MissingDependency,
    ensure_port_free,
    free_port,
    wait_ready,
)

ROOT = Path(__file__).resolve().parent.parent
DEVSTACK = ROOT / "devstack"
NODE_BIN = DEVSTACK / "node_modules" / ".bin"
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 60.0

ENV_VARS = {
    "auth": "FIREBASE_AUTH_EMULATOR_HOST",
    "firestore": "FIRESTORE_EMULATOR_HOST",
    "pubsub": "PUBSUB_EMULATOR_HOST",
}


@dataclass(frozen=True)
class EmulatorPorts:
    auth: int
    firestore: int
    pubsub: int
    # firebase-tools also opens a hub and a logging port; pin them so two stacks can coexist.
    auth_hub: int
    auth_logging: int

    @classmethod
    def defaults(cls, offset: int = 0) -> EmulatorPorts:
        """The ports of DESIGN §6, shifted by `offset` (DEVSTACK_PORT_OFFSET) if asked."""
        return cls(9099 + offset, 8080 + offset, 8085 + offset, 4400 + offset, 4500 + offset)

    @classmethod
    def ephemeral(cls) -> EmulatorPorts:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


@dataclass(frozen=True)
class EmulatorHosts:
    """Where each emulator answers, as `host:port` (the form the Google clients read)."""

    auth: str
    firestore: str
    pubsub: str

    def env(self) -> dict[str, str]:
        return {ENV_VARS[k]: getattr(self, k) for k in ENV_VARS}

    def as_json(self) -> dict[str, str]:
        return {"auth": self.auth, "firestore": self.firestore, "pubsub": self.pubsub}


@dataclass
class _Emulator:
    name: str
    host: str
    probe: Callable[[str], bool]
    proc: ManagedProcess | None  # None: provided from outside through the env var


class Emulators:
    """Starts (or adopts) the emulators and stops what it started, as a context manager."""

    def __init__(
        self,
        workdir: Path,
        ports: EmulatorPorts,
        project: str,
        environ: Mapping[str, str] | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> None:
        self.workdir = workdir
        self.ports = ports
        self.project = project
        self.environ = dict(os.environ if environ is None else environ)
        self.ready_timeout = ready_timeout
        self._emulators: list[_Emulator] = []
        self.ready_seconds: dict[str, float] = {}

    def __enter__(self) -> EmulatorHosts:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> EmulatorHosts:
        self.workdir.mkdir(parents=True, exist_ok=True)
        planned: list[tuple[str, Callable[[str], bool], Callable[[str], ManagedProcess]]] = [
            ("auth", probes.auth_emulator, self._auth_process),
            ("firestore", probes.firestore_emulator, self._firestore_process),
            ("pubsub", probes.pubsub_emulator, self._pubsub_process),
        ]
        # Check every port first, so a clash is reported before anything was spawned.
        for name, _, _ in planned:
            if not self.environ.get(ENV_VARS[name]):
                ensure_port_free(f"{name} emulator", LOOPBACK, getattr(self.ports, name))
        if not self.environ.get(ENV_VARS["auth"]):
            ensure_port_free("auth emulator hub", LOOPBACK, self.ports.auth_hub)
            ensure_port_free("auth emulator logging", LOOPBACK, self.ports.auth_logging)
        for name, probe, make in planned:
            given = self.environ.get(ENV_VARS[name])
            if given:
                self._emulators.append(_Emulator(name, given, probe, None))
                continue
            host = f"{LOOPBACK}:{getattr(self.ports, name)}"
            proc = make(host)
            proc.start()
            self._emulators.append(_Emulator(name, host, probe, proc))
        # All start in parallel; then wait for each to answer a real request.
        started = time.monotonic()
        for emu in self._emulators:
            label = f"{emu.name} emulator at {emu.host}" + (
                "" if emu.proc else f" (from {ENV_VARS[emu.name]})"
            )
            wait_ready(emu.proc, label, partial(emu.probe, emu.host), self.ready_timeout)
            self.ready_seconds[emu.name] = time.monotonic() - started
        by_name = {e.name: e.host for e in self._emulators}
        return EmulatorHosts(by_name["auth"], by_name["firestore"], by_name["pubsub"])

    def process(self, name: str) -> ManagedProcess | None:
        """The process of emulator ``name`` (auth/firestore/pubsub); None if adopted."""
        for emu in self._emulators:
            if emu.name == name:
                return emu.proc
        raise KeyError(name)

    def check_alive(self) -> None:
        for emu in self._emulators:
            if emu.proc is not None:
                emu.proc.check_alive()

    def stop(self) -> None:
        for emu in reversed(self._emulators):
            if emu.proc is not None:
                emu.proc.stop()
        self._emulators.clear()

    def _child_env(self) -> dict[str, str]:
        env = dict(self.environ)
        # firebase-tools would look for a newer release over the network; there is none here.
        env["NO_UPDATE_NOTIFIER"] = "1"
        for var in ENV_VARS.values():
            env.pop(var, None)
        return env

    def _auth_process(self, host: str) -> ManagedProcess:
        firebase = NODE_BIN / "firebase"
        if not firebase.exists():
            raise MissingDependency(
                f"auth emulator: {firebase} is missing. Run `make dev` or `make test` "
                "(they run `npm ci` in devstack/)."
            )
        config = self.workdir / "firebase.json"
        hostname = host.rsplit(":", 1)[0]
        config.write_text(
            json.dumps(
                {
                    "emulators": {
                        "auth": {"host": hostname, "port": self.ports.auth},
                        "hub": {"host": hostname, "port": self.ports.auth_hub},
                        "logging": {"host": hostname, "port": self.ports.auth_logging},
                        "ui": {"enabled": False},
                        # Tests isolate themselves with a fresh project id each.
                        "singleProjectMode": False,
                    }
                }
            ),
            encoding="utf-8",
        )
        argv = [
            str(firebase),
            "emulators:start",
            "--only",
            "auth",
            "--project",
            self.project,
            "--config",
            str(config),
        ]
        return ManagedProcess(
            "auth emulator", argv, self.workdir / "auth.log", self.workdir, self._child_env()
        )

    def _firestore_process(self, host: str) -> ManagedProcess:
        if not (DEVSTACK / "node_modules" / "@firestore-emulator" / "server").exists():
            raise MissingDependency(
                "firestore emulator: @firestore-emulator/server is not installed. Run `make dev` "
                "or `make test` (they run `npm ci` in devstack/)."
            )
        hostname, port = host.rsplit(":", 1)
        argv = ["node", str(DEVSTACK / "firestore_emulator.cjs"), hostname, port]
        return ManagedProcess(
            "firestore emulator", argv, self.workdir / "firestore.log", DEVSTACK, self._child_env()
        )

    def _pubsub_process(self, host: str) -> ManagedProcess:
        hostname, port = host.rsplit(":", 1)
        argv = [sys.executable, "-m", "devstack.pubsub", "--host", hostname, "--port", port]
        return ManagedProcess(
            "pubsub emulator", argv, self.workdir / "pubsub.log", ROOT, self._child_env()
        )
