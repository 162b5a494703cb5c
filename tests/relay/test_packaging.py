"""What the relay's image and settings promise, read from the files Cloud Build and Cloud
Run use (no Docker daemon here: the image's command is what the stack runs)."""

from __future__ import annotations

import re

import pytest

from devstack.emulators import ROOT
from relay.settings import DEFAULT_AUTH_TIMEOUT_S, RelaySettings, new_relay_id
from shared.config import ENV_VARS, ConfigError

DOCKERFILE = ROOT / "relay" / "Dockerfile"
IGNORE = ROOT / "relay" / "Dockerfile.dockerignore"
ENV = {
    "APEX_FIREBASE_API_KEY": "k",
    "APEX_FIREBASE_AUTH_DOMAIN": "apex.firebaseapp.com",
    "APEX_THREADS_GET_URL": "https://threads-get.example.run.app",
}


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_the_image_is_python_312_slim_non_root_and_runs_the_relay_on_port() -> None:
    steps = _instructions()
    assert steps[0] == ("FROM", "python:3.12-slim")
    copies = [arg for op, arg in steps if op == "COPY"]
    assert copies == ["requirements.txt ./", "shared/ shared/", "relay/ relay/"]
    assert any(op == "RUN" and "pip install" in a and "requirements.txt" in a for op, a in steps)
    users = [arg for op, arg in steps if op == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert steps[-1] == ("CMD", '["python", "-m", "relay", "--host", "0.0.0.0"]')
    # `python -m relay` listens on $PORT (relay/__main__.py), which Cloud Run sets.
    assert 'os.environ.get("PORT"' in (ROOT / "relay" / "__main__.py").read_text()


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
