"""`make dev`: the whole local stack on loopback, its endpoints file, and a clean stop."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TextIO

import httpx
from google.cloud import firestore
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from devstack import probes
from devstack.auth_emulator import AuthEmulator, AuthEmulatorError
from devstack.emulators import LOOPBACK, ROOT, EmulatorHosts, EmulatorPorts, Emulators
from devstack.function_targets import discover_targets
from devstack.procs import ManagedProcess, StackError, ensure_port_free, wait_ready
from devstack.pubsub_setup import apply_topology
from devstack.synthetic import generate
from devstack.ticker import DEFAULT_TICK_S, Ticker, tick_interval
from shared.config import ALLOW_LOOPBACK_VAR, MIN_PEPPER_CHARS
from shared.errors import Conflict
from shared.store.usage import FirestoreUsageStore
from shared.store.workspaces import FirestoreWorkspaceStore
from shared.topology import Topology, load_topology
from shared.workspaces.service import create_api_key, create_workspace

FUNCTIONS_MAIN = ROOT / "functions" / "main.py"
DEMO_EMAIL = "demo@apex.test"
DEMO_WORKSPACE = "demo"
DEMO_WORKSPACE_NAME = "Demo"
# The demo workspace's ingest key, for scripts (`Authorization: Bearer $(cat ...)`).
DEMO_KEY_FILE = "demo-ingest-key"
PUBLIC_FUNCTION_BASE_PORT = 8101
WORKER_BASE_PORT = 8201
RELAY_PORT = 8000
RELAY_READY_TIMEOUT_S = 60.0
# The chat page's Firebase web config, locally: the Auth emulator takes any API key.
LOCAL_FIREBASE_API_KEY = "fake-api-key"
LOCAL_FIREBASE_AUTH_DOMAIN = "localhost"


@dataclass(frozen=True)
class DevConfig:
    project: str
    port_offset: int
    state_dir: Path
    # Every port from the OS (bound to port 0) instead of base + offset: the stacks of tests
    # and benchmarks run side by side, and beside `make dev`, with no block of ports to find.
    os_ports: bool = False

    @classmethod
    def with_os_ports(cls, project: str, state_dir: Path) -> DevConfig:
        return cls(project=project, port_offset=0, state_dir=state_dir, os_ports=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DevConfig:
        offset_text = environ.get("DEVSTACK_PORT_OFFSET", "0")
        try:
            offset = int(offset_text)
        except ValueError as e:
            raise StackError(
                f"DEVSTACK_PORT_OFFSET must be a whole number, not {offset_text!r}"
            ) from e
        return cls(
            project=environ.get("GOOGLE_CLOUD_PROJECT", "demo-apex"),
            port_offset=offset,
            state_dir=Path(environ.get("DEVSTACK_DIR", str(ROOT / ".devstack"))),
        )

    def function_ports(self, topology: Topology, targets: list[str]) -> dict[str, int]:
        """Workers get stable ports in topology order; public functions in name order."""
        workers = topology.workers()
        ports = {w: WORKER_BASE_PORT + self.port_offset + i for i, w in enumerate(workers)}
        public = sorted(t for t in targets if t not in workers)
        for i, name in enumerate(public):
            ports[name] = PUBLIC_FUNCTION_BASE_PORT + self.port_offset + i
        return ports

    @property
    def relay_port(self) -> int:
        return RELAY_PORT + self.port_offset


def os_ports(count: int) -> list[int]:
    """``count`` distinct ports from the OS: every socket stays bound until all are chosen."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


@dataclass
class RunningStack:
    hosts: EmulatorHosts
    project: str
    functions: dict[str, str]
    workers: dict[str, str]
    missing_workers: list[str]
    demo_password: str
    # An ingest key of workspace demo (apx_…), valid while this stack runs, and its file.
    demo_ingest_key: str
    demo_key_file: Path
    ready_seconds: float
    relay: str
    # The environment the public functions run with (emulators, project, CORS, the key
    # pepper, the relay's settings): what another process beside this stack's needs (tests
    # start their own relays).
    env: dict[str, str] = field(default_factory=dict)
    watched: list[ManagedProcess | Emulators] = field(default_factory=list)
    # Seconds between the budget ticks the stack publishes (its Cloud Scheduler).
    budget_tick_s: float = DEFAULT_TICK_S

    def check_alive(self) -> None:
        for item in self.watched:
            item.check_alive()

    def endpoints(self) -> dict[str, object]:
        """The `.devstack/endpoints.json` document of DESIGN §6."""
        return {
            "relay": self.relay,
            "functions": self.functions,
            "workers": self.workers,
            "emulators": self.hosts.as_json(),
            "project": self.project,
        }


def _function_process(
    name: str, port: int, env: Mapping[str, str], log_dir: Path
) -> ManagedProcess:
    argv = [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        str(FUNCTIONS_MAIN),
        "--target",
        name,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
    ]
    return ManagedProcess(f"function {name}", argv, log_dir / f"{name}.log", ROOT, env)


def relay_process(port: int, env: Mapping[str, str], log_path: Path) -> ManagedProcess:
    """The relay as Cloud Run runs it (``python -m relay``), on loopback."""
    argv = [sys.executable, "-m", "relay", "--host", LOOPBACK, "--port", str(port)]
    return ManagedProcess(f"relay on port {port}", argv, log_path, ROOT, env)


def relay_ready(url: str) -> bool:
    """The relay's readiness check passes: Firestore, Pub/Sub and its own subscription."""
    try:
        return httpx.get(f"{url}/health/ready", timeout=10.0).status_code == 200
    except httpx.TransportError:
        return False


def _relay_origins(port: int) -> list[str]:
    # The page served by the relay calls the functions from these origins.
    return [f"http://{LOOPBACK}:{port}", f"http://localhost:{port}"]


def _cors_origins(environ: Mapping[str, str], port: int) -> str:
    given = [o.strip() for o in environ.get("APEX_CORS_ORIGINS", "").split(",") if o.strip()]
    return ",".join(dict.fromkeys([*given, *_relay_origins(port)]))


def key_pepper(environ: Mapping[str, str]) -> str:
    """The API keys' pepper the functions get: ``APEX_KEY_PEPPER`` if set, else a new random
    one. A new one each run is enough: the emulators ``make dev`` starts keep their data in
    memory, so no key outlives the run, and the demo key is made anew with it. (With emulators
    of your own, through the *_EMULATOR_HOST variables, set APEX_KEY_PEPPER to keep keys
    working across runs.)"""
    given = environ.get("APEX_KEY_PEPPER")
    if given is None:
        return secrets.token_urlsafe(48)  # 64 characters, 384 random bits
    if len(given) < MIN_PEPPER_CHARS:
        raise StackError(f"APEX_KEY_PEPPER must be at least {MIN_PEPPER_CHARS} characters")
    return given


def _ensure_demo_user(hosts: EmulatorHosts, project: str) -> tuple[str, str]:
    """Sign up demo@apex.test, email verified (invites need it), with a fresh password each
    run: its uid and password."""
    password = secrets.token_urlsafe(12)
    with AuthEmulator(hosts.auth, project) as auth:
        try:
            user = auth.sign_up(DEMO_EMAIL, password)
            uid = user.uid
        except AuthEmulatorError as e:
            if e.message != "EMAIL_EXISTS":
                raise
            # Emulators kept from an earlier run (the *_EMULATOR_HOST variables).
            existing = auth.find_uid(DEMO_EMAIL)
            if existing is None:
                raise
            uid = existing
            auth.update(uid, password=password)
        auth.update(uid, emailVerified=True)
    return uid, password


def ensure_demo_workspace(project: str, uid: str, pepper: str, now: datetime) -> str:
    """Workspace ``demo`` with the demo user its owner (membership is Firestore data, DESIGN
    §9), and a new ingest key for it: the key's credential (``apx_…``)."""
    client = firestore.Client(project=project)
    try:
        store = FirestoreWorkspaceStore(client)
        try:
            create_workspace(
                store, uid, DEMO_EMAIL, DEMO_WORKSPACE_NAME, now, workspace_id=DEMO_WORKSPACE
            )
        except Conflict:
            # Emulators kept from an earlier run: the workspace is there already.
            member = store.member(DEMO_WORKSPACE, uid)
            if member is None or member.role != "owner":
                raise StackError(
                    f"workspace {DEMO_WORKSPACE} exists in project {project} and {DEMO_EMAIL} is "
                    f"not its owner; use fresh emulators or another GOOGLE_CLOUD_PROJECT"
                ) from None
        _key, credential = create_api_key(
            store,
            pepper.encode(),
            DEMO_WORKSPACE,
            uid,
            name="make dev",
            scope="ingest",
            expires_at=None,
            now=now,
        )
    finally:
        client.close()
    return credential


def write_secret_file(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only (0600) from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # a file left by an earlier run keeps its old mode
        f.write(text + "\n")


def load_demo_data(project: str, end: date) -> int:
    """The synthetic workspace (planted inefficiencies) into workspace ``demo``."""
    client = firestore.Client(project=project)
    try:
        records = generate(end=end).records
        FirestoreUsageStore(client).apply(DEMO_WORKSPACE, records)
    finally:
        client.close()
    return len(records)


@contextmanager
def run_stack(
    config: DevConfig, environ: Mapping[str, str], *, demo_data: bool = True
) -> Iterator[RunningStack]:
    """Start everything, yield the running stack, stop everything on the way out.

    ``demo_data``: load the synthetic usage (30 days ending yesterday) into workspace demo.
    """
    started = time.monotonic()
    topology = load_topology()
    targets = discover_targets(FUNCTIONS_MAIN)
    if config.os_ports:
        *function_ports, relay_port = os_ports(len(targets) + 1)
        ports = dict(zip(targets, function_ports, strict=True))
    else:
        ports, relay_port = config.function_ports(topology, targets), config.relay_port
    for name in targets:
        ensure_port_free(f"function {name}", LOOPBACK, ports[name])
    ensure_port_free("relay", LOOPBACK, relay_port)
    for needed in ("threads_get", "workspaces", "agents_data", "agents_optimization"):
        if needed not in targets:
            raise StackError(f"functions/main.py has no {needed} target; the relay's pages need it")
    pepper = key_pepper(environ)
    tick_s = tick_interval(environ)

    with ExitStack() as stack:
        emulators = Emulators(
            config.state_dir / "emulators",
            EmulatorPorts.ephemeral()
            if config.os_ports
            else EmulatorPorts.defaults(config.port_offset),
            config.project,
            environ,
        )
        hosts = stack.enter_context(emulators)

        urls = {name: f"http://{LOOPBACK}:{port}/" for name, port in ports.items()}
        relay_url = f"http://{LOOPBACK}:{relay_port}"
        child_env = {
            **environ,
            **hosts.env(),
            "GOOGLE_CLOUD_PROJECT": config.project,
            "PYTHONPATH": str(ROOT),
            "APEX_CORS_ORIGINS": _cors_origins(environ, relay_port),
            "APEX_KEY_PEPPER": pepper,
            # Webhooks may reach receivers on loopback (http too): the local stack only.
            ALLOW_LOOPBACK_VAR: environ.get(ALLOW_LOOPBACK_VAR, "true"),
            # The relay's settings (the functions ignore them).
            "APEX_THREADS_GET_URL": urls["threads_get"],
            "APEX_WORKSPACES_URL": urls["workspaces"],
            "APEX_AGENTS_DATA_URL": urls["agents_data"],
            "APEX_AGENTS_OPTIMIZATION_URL": urls["agents_optimization"],
            "APEX_FIREBASE_API_KEY": LOCAL_FIREBASE_API_KEY,
            "APEX_FIREBASE_AUTH_DOMAIN": LOCAL_FIREBASE_AUTH_DOMAIN,
        }
        # As in GCP (infra/secrets.tf), only the public functions get the pepper.
        private_env = {k: v for k, v in child_env.items() if k != "APEX_KEY_PEPPER"}
        workers = topology.workers()
        processes = [
            _function_process(
                name,
                ports[name],
                private_env if name in workers else child_env,
                config.state_dir / "logs",
            )
            for name in targets
        ]
        for proc in processes:
            stack.callback(proc.stop)
            proc.start()

        # The Google clients find emulators only through these variables.
        os.environ.update(hosts.env())
        publisher = PublisherClient()
        subscriber = SubscriberClient()
        stack.callback(subscriber.close)
        apply_topology(topology, config.project, urls, publisher, subscriber)
        demo_uid, demo_password = _ensure_demo_user(hosts, config.project)
        demo_key = ensure_demo_workspace(config.project, demo_uid, pepper, datetime.now(UTC))
        key_file = config.state_dir / DEMO_KEY_FILE
        write_secret_file(key_file, demo_key)
        stack.callback(key_file.unlink, missing_ok=True)
        if demo_data:
            yesterday = datetime.now(UTC).date() - timedelta(days=1)
            load_demo_data(config.project, yesterday)

        for proc, name in zip(processes, targets, strict=True):
            wait_ready(proc, proc.name, partial(probes.http_answers, urls[name]), 60.0)

        # The Cloud Scheduler job's part (infra/scheduler.tf): the budget tick.
        ticker = Ticker(publisher, config.project, tick_s)
        stack.callback(ticker.stop)
        ticker.start()

        # The relay subscribes to apex-events at start-up: after the topology exists.
        relay = relay_process(relay_port, private_env, config.state_dir / "logs" / "relay.log")
        stack.callback(relay.stop)
        relay.start()
        wait_ready(relay, "relay", partial(relay_ready, relay_url), RELAY_READY_TIMEOUT_S)

        running = RunningStack(
            hosts=hosts,
            project=config.project,
            functions={n: urls[n] for n in targets if n not in workers},
            workers={n: urls[n] for n in workers if n in targets},
            missing_workers=[w for w in workers if w not in targets],
            demo_password=demo_password,
            demo_ingest_key=demo_key,
            demo_key_file=key_file,
            ready_seconds=time.monotonic() - started,
            relay=relay_url,
            env=child_env,
            watched=[*processes, relay, emulators],
            budget_tick_s=tick_s,
        )
        write_endpoints(config.state_dir / "endpoints.json", running.endpoints())
        stack.callback((config.state_dir / "endpoints.json").unlink, missing_ok=True)
        yield running


def write_endpoints(path: Path, document: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # readers never see a half-written file


def print_table(running: RunningStack, out: TextIO = sys.stdout) -> None:
    rows: list[tuple[str, str]] = [
        ("relay (chat page)", f"{running.relay}/"),
        ("relay WebSocket", f"{running.relay.replace('http', 'ws', 1)}/ws"),
        ("auth emulator", running.hosts.auth),
        ("firestore emulator", running.hosts.firestore),
        ("pubsub emulator", running.hosts.pubsub),
    ]
    rows += [(f"function {n}", u) for n, u in running.functions.items()]
    rows += [(f"worker {n}", u) for n, u in running.workers.items()]
    rows += [(f"worker {n}", "not in functions/main.py yet") for n in running.missing_workers]
    rows.append(("budget tick", f"every {running.budget_tick_s:g} s (APEX_BUDGET_TICK_S)"))
    rows.append(("demo user", f"{DEMO_EMAIL} / {running.demo_password} (workspace demo)"))
    rows.append(("demo ingest key", f"{running.demo_ingest_key} (also in {running.demo_key_file})"))
    traces = running.functions["otlp_ingest"].rstrip("/") + "/v1/traces"
    rows.append(("OTLP traces endpoint", traces))
    width = max(len(r[0]) for r in rows)
    lines = [f"  {name.ljust(width)}  {value}" for name, value in rows]
    print(f"Apex local stack, project {running.project}:", *lines, sep="\n", file=out)
    # What an OpenTelemetry SDK or Collector needs to send traces to workspace demo (docs/otlp.md).
    print(
        "OpenTelemetry exporter settings for workspace demo (docs/otlp.md):",
        f"  export OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={traces}",
        f"  export OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20{running.demo_ingest_key}",
        sep="\n",
        file=out,
    )


def serve(config: DevConfig, environ: Mapping[str, str]) -> int:
    """Run until Ctrl-C or SIGTERM (exit 0) or until a child dies (exit 1)."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        with run_stack(config, environ) as running:
            print_table(running)
            print(f"ready in {running.ready_seconds:.1f} s; Ctrl-C stops everything.", flush=True)
            while True:
                running.check_alive()
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopped.", flush=True)
        return 0


def main() -> int:
    environ = dict(os.environ)
    try:
        return serve(DevConfig.from_env(environ), environ)
    except StackError as e:
        print(f"make dev: {e}", file=sys.stderr, flush=True)
        return 1
