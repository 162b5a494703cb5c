"""`python -m devstack` (what `make dev` runs), end to end, on shifted ports.

The ports are shifted with DEVSTACK_PORT_OFFSET so this runs beside a developer's own
`make dev`; everything else is exactly what `make dev` does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import firebase_admin
import httpx
import pytest
from firebase_admin import auth as fb_auth
from google.cloud import firestore
from google.cloud.pubsub_v1 import SubscriberClient

from devstack.auth_emulator import AuthEmulator
from devstack.emulators import ROOT
from devstack.procs import PortInUse, ensure_port_free
from shared.store.usage import FirestoreUsageStore
from shared.topology import load_topology
from tests.support.otlp import chat, export

# make dev's own ports (DESIGN §6), deliberately fixed rather than from the OS: this test
# checks that DEVSTACK_PORT_OFFSET moves every one of them by the offset.
BASE_PORTS = (9099, 8080, 8085, 4400, 4500, 8000, 8101, 8201)
READY_TIMEOUT_S = 90
# How long a usage batch may take from usage_ingest through Pub/Sub to the aggregator's write.
INGESTED_TIMEOUT_S = 30


def _free_offset() -> int:
    for offset in range(21000, 40000, 137):
        try:
            for port in BASE_PORTS:
                ensure_port_free("probe", "127.0.0.1", port + offset)
        except PortInUse:
            continue
        return offset
    raise AssertionError("no free block of ports for a second stack")


def _env(offset: int, state_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_EMULATOR_HOST") and k != "GOOGLE_CLOUD_PROJECT"
    }
    env.update({"DEVSTACK_PORT_OFFSET": str(offset), "DEVSTACK_DIR": str(state_dir)})
    return env


class Dev:
    def __init__(self, proc: subprocess.Popen[str], state_dir: Path) -> None:
        self.proc = proc
        self.state_dir = state_dir
        self.lines: list[str] = []

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"make dev ended early: {''.join(self.lines)}")
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no {pattern!r} within {timeout} s: {''.join(self.lines)}")


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    offset = _free_offset()
    state_dir = tmp_path / "devstack"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=_env(offset, state_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Dev(proc, state_dir)
    finally:
        assert proc.stdout is not None
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
        finally:
            # A stack that did not stop in time is killed, and its pipe closed either way
            # (left open, it surfaces as a ResourceWarning in a later test).
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            proc.stdout.close()


def test_make_dev_starts_the_stack_writes_endpoints_and_stops_cleanly(
    dev: Dev, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ready within READY_TIMEOUT_S (how long it takes is a figure for bench/, not a test).
    dev.wait_for(r"ready in ([\d.]+) s", READY_TIMEOUT_S)
    password = re.search(r"demo@apex\.test / (\S+) \(workspace demo\)", "".join(dev.lines))
    assert password, "the demo user's password is printed"

    endpoints = json.loads((dev.state_dir / "endpoints.json").read_text())
    assert set(endpoints) == {"relay", "functions", "workers", "emulators", "project"}
    assert endpoints["project"] == "demo-apex"
    # The relay: on 8000 + offset, ready (Firestore, Pub/Sub, its own subscription), its page's
    # config pointing at this stack's threads_get, and in the printed table.
    relay = endpoints["relay"]
    assert relay == f"http://127.0.0.1:{8000 + _offset_of(endpoints['emulators']['auth'])}"
    relay_ready = httpx.get(f"{relay}/health/ready", timeout=10)
    assert relay_ready.status_code == 200, relay_ready.text
    config = httpx.get(f"{relay}/config.json", timeout=10).json()
    assert config["threadsGetUrl"] == endpoints["functions"]["threads_get"]
    assert config["workspacesUrl"] == endpoints["functions"]["workspaces"]
    assert config["authEmulatorHost"] == endpoints["emulators"]["auth"]
    assert f"{relay}/" in "".join(dev.lines)
    hosts = endpoints["emulators"]
    assert set(hosts) == {"auth", "firestore", "pubsub"}
    for name, var in (
        ("auth", "FIREBASE_AUTH_EMULATOR_HOST"),
        ("firestore", "FIRESTORE_EMULATOR_HOST"),
        ("pubsub", "PUBSUB_EMULATOR_HOST"),
    ):
        monkeypatch.setenv(var, hosts[name])

    # The demo user signs in with the printed password: email verified, and no workspace
    # claim (the custom-claim rule is retired, DESIGN §9).
    with AuthEmulator(hosts["auth"], "demo-apex") as auth:
        user = auth.sign_in("demo@apex.test", password.group(1))
    app = firebase_admin.initialize_app(options={"projectId": "demo-apex"}, name="make-dev")
    try:
        claims = fb_auth.verify_id_token(user.id_token, app=app)
    finally:
        firebase_admin.delete_app(app)
    assert claims["email_verified"] is True
    assert "workspace" not in claims
    # ...and is the owner of workspace demo as Firestore data, which the workspaces function
    # lists, beside their personal workspace.
    functions = endpoints["functions"]
    mine = httpx.get(
        functions["workspaces"], headers={"Authorization": f"Bearer {user.id_token}"}, timeout=30
    )
    assert mine.status_code == 200, mine.text
    listed = {w["workspace_id"]: w for w in mine.json()["workspaces"]}
    assert listed["demo"]["role"] == "owner"
    assert listed["demo"]["name"] == "Demo"

    # The synthetic usage is in workspace demo.
    db = firestore.Client(project="demo-apex")
    assert FirestoreUsageStore(db).catalogue("demo").records > 1000

    # The printed ingest key, also in a file only its owner may read, sends usage to workspace
    # demo, with the workspace header or without; every other function refuses it.
    printed = re.search(r"demo ingest key\s+(apx_\S+) \(also in (\S+)\)", "".join(dev.lines))
    assert printed, "the demo ingest key is printed"
    key, key_file = printed.group(1), Path(printed.group(2))
    assert key_file == dev.state_dir / "demo-ingest-key"
    assert key_file.read_text(encoding="utf-8") == key + "\n"
    assert key_file.stat().st_mode & 0o777 == 0o600
    bearer = {"Authorization": f"Bearer {key}"}
    day = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime())
    for model, headers in (
        ("make-dev-key-check", {**bearer, "X-Apex-Workspace": "demo"}),
        ("make-dev-key-check-2", bearer),
    ):
        record = {"model": model, "input_tokens": 10, "output_tokens": 5, "ts": day}
        sent = httpx.post(functions["usage_ingest"], json=[record], headers=headers, timeout=30)
        assert sent.status_code == 202, sent.text
        assert sent.json() == {"accepted": 1, "rejected": []}
    # The printed OpenTelemetry settings, as an exporter reads them, reach workspace demo too.
    otel = dict(re.findall(r"export (OTEL_EXPORTER_OTLP_\w+)=(\S+)", "".join(dev.lines)))
    assert otel["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == (
        functions["otlp_ingest"].rstrip("/") + "/v1/traces"
    )
    name, _, value = otel["OTEL_EXPORTER_OTLP_HEADERS"].partition("=")
    assert (name, unquote(value)) == ("Authorization", f"Bearer {key}")
    exported = httpx.post(
        otel["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
        content=export([chat("make-dev-otlp-check")]).SerializeToString(),
        headers={name: unquote(value), "Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert exported.status_code == 200, exported.content
    deadline = time.monotonic() + INGESTED_TIMEOUT_S
    while not {"make-dev-key-check", "make-dev-key-check-2", "make-dev-otlp-check"} <= set(
        FirestoreUsageStore(db).catalogue("demo").models
    ):
        assert time.monotonic() < deadline, "the key's usage never reached workspace demo"
        time.sleep(0.2)
    refused = {
        "agents_data": httpx.post(
            functions["agents_data"], json={"period": "last_7d"}, headers=bearer, timeout=30
        ),
        "workspaces": httpx.get(functions["workspaces"], headers=bearer, timeout=30),
        "threads_get": httpx.get(functions["threads_get"], headers=bearer, timeout=30),
    }
    for name, response in refused.items():
        assert response.status_code == 401, (name, response.text)
        assert key not in response.text

    # Every topic and subscription of the shared topology exists.
    topology = load_topology()
    subscriber = SubscriberClient()
    try:
        subs = {
            s.name.rsplit("/", 1)[1]
            for s in subscriber.list_subscriptions(project="projects/demo-apex")
        }
    finally:
        subscriber.close()
    relay_sub = topology.relay_subscription_name(relay_ready.json()["relay_id"])
    assert subs == {s.name for s in topology.subscriptions()} | {relay_sub}

    # Firestore answers the official client.
    db.collection("probe").document("x").set({"ok": True})
    assert db.collection("probe").document("x").get().to_dict() == {"ok": True}
    db.close()

    # A second `make dev` on the same ports fails at once, saying which port.
    second = subprocess.run(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=_env(_offset_of(hosts["auth"]), dev.state_dir.parent / "second"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    # Function ports are checked first (before any emulator starts), so the first one named
    # is a function's.
    assert re.search(
        r"(function \w+|auth emulator): port \d+ on 127\.0\.0\.1 is already in use", second.stderr
    )

    # Ctrl-C stops everything it started and removes the endpoints file.
    dev.proc.send_signal(signal.SIGINT)
    assert dev.proc.wait(timeout=30) == 0
    assert not (dev.state_dir / "endpoints.json").exists()
    assert not key_file.exists()
    for host in hosts.values():
        ensure_port_free("stopped emulator", "127.0.0.1", int(host.rsplit(":", 1)[1]))
    ensure_port_free("stopped relay", "127.0.0.1", int(relay.rsplit(":", 1)[1]))


def _offset_of(auth_host: str) -> int:
    return int(auth_host.rsplit(":", 1)[1]) - 9099
