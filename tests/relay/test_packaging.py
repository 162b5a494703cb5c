"""What the relay's image and settings promise, read from the files Cloud Build and Cloud
Run use. No Docker daemon here: the image's command is run as a process with the image's
environment, as the container would run it."""

from __future__ import annotations

import json
import re
import shlex
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest

from devstack.emulators import ROOT
from devstack.procs import ManagedProcess, free_port, wait_ready
from devstack.stack import RunningStack, relay_ready
from relay.settings import DEFAULT_AUTH_TIMEOUT_S, RelaySettings, new_relay_id
from shared.config import ENV_VARS, ConfigError
from tests.support.sockets import listening_ports

DOCKERFILE = ROOT / "relay" / "Dockerfile"
IGNORE = ROOT / "relay" / "Dockerfile.dockerignore"
ENV = {
    "APEX_FIREBASE_API_KEY": "k",
    "APEX_FIREBASE_AUTH_DOMAIN": "apex.firebaseapp.com",
    "APEX_THREADS_GET_URL": "https://threads-get.example.run.app",
    "APEX_WORKSPACES_URL": "https://workspaces.example.run.app",
    "APEX_AGENTS_DATA_URL": "https://agents-data.example.run.app",
    "APEX_AGENTS_OPTIMIZATION_URL": "https://agents-optimization.example.run.app",
}


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_the_image_is_python_312_slim_non_root_and_runs_the_relay() -> None:
    steps = _instructions()
    assert steps[0] == ("FROM", "python:3.12-slim")
    copies = [arg for op, arg in steps if op == "COPY"]
    assert copies == ["requirements.txt ./", "shared/ shared/", "relay/ relay/"]
    assert any(op == "RUN" and "pip install" in a and "requirements.txt" in a for op, a in steps)
    users = [arg for op, arg in steps if op == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert steps[-1] == ("CMD", '["python", "-m", "relay", "--host", "0.0.0.0"]')


def _image_env() -> dict[str, str]:
    """The image's ENV instructions (``KEY=value`` pairs)."""
    pairs = [p for op, arg in _instructions() if op == "ENV" for p in shlex.split(arg)]
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_images_command_listens_on_the_port_cloud_run_gives_it(
    relay_stack: RunningStack, tmp_path: Path
) -> None:
    """The image's CMD, run as the container runs it (its ENV, then the PORT Cloud Run
    sets, here one the OS gave), answers on that port and on no other."""
    [command] = [json.loads(arg) for op, arg in _instructions() if op == "CMD"]
    assert command[0] == "python"
    image_env = _image_env()
    assert image_env["PORT"] == "8080"  # the image's default, which Cloud Run overrides
    port = free_port()
    env = {**relay_stack.env, **image_env, "PORT": str(port)}
    proc = ManagedProcess(
        "relay as the image runs it",
        [sys.executable, *command[1:]],
        tmp_path / "relay.log",
        ROOT,
        env,
    )
    url = f"http://127.0.0.1:{port}"
    proc.start()
    try:
        wait_ready(proc, proc.name, partial(relay_ready, url), 60.0)
        live = httpx.get(f"{url}/health/live", timeout=10)
        assert (live.status_code, live.json()) == (200, {"status": "live"})
        assert listening_ports(proc.pid) == {port}
    finally:
        proc.stop()


def test_the_build_context_sends_only_what_the_image_needs() -> None:
    rules = [ln for ln in IGNORE.read_text().splitlines() if ln and not ln.startswith("#")]
    assert rules[0] == "*"
    assert {"!requirements.txt", "!shared/", "!relay/", "relay/node_modules/"} <= set(rules)


def test_relay_settings_default_and_name_what_is_wrong() -> None:
    settings = RelaySettings.from_env({**ENV, "K_REVISION": "apex-relay-00007-xyz"})
    assert settings.auth_timeout_s == DEFAULT_AUTH_TIMEOUT_S == 10
    assert re.fullmatch(r"apex-relay-00007-xyz-[0-9a-f]{8}", settings.relay_id)
    assert RelaySettings.from_env(ENV).relay_id.startswith("local-")
    for name in ENV:
        with pytest.raises(ConfigError, match=name):
            RelaySettings.from_env({k: v for k, v in ENV.items() if k != name})
    with pytest.raises(ConfigError, match="APEX_RELAY_AUTH_TIMEOUT_S"):
        RelaySettings.from_env({**ENV, "APEX_RELAY_AUTH_TIMEOUT_S": "-1"})


def test_every_setting_the_relay_reads_is_registered_for_the_infra_checks() -> None:
    for name in [*ENV, "APEX_RELAY_AUTH_TIMEOUT_S"]:
        assert "relay" in ENV_VARS[name].readers


def test_relay_ids_are_distinct_and_valid_subscription_suffixes() -> None:
    ids = {new_relay_id("apex-relay-00001-abc") for _ in range(100)}
    assert len(ids) == 100
    assert new_relay_id("1bad_REV").startswith("r-1bad-rev-")
    assert new_relay_id("").startswith("r-")
