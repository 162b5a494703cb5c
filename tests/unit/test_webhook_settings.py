"""The local-stack setting that lets webhooks reach loopback (DESIGN §11): off by default,
on only as `true`, and refused by a production process like the emulator hosts (§7)."""

from __future__ import annotations

import pytest

from shared.config import ALLOW_LOOPBACK_VAR, ConfigError, Settings

BASE = {"GOOGLE_CLOUD_PROJECT": "demo-apex"}


def test_off_unless_set_to_true() -> None:
    assert Settings.from_env(BASE).webhooks_allow_loopback is False
    assert Settings.from_env({**BASE, ALLOW_LOOPBACK_VAR: "false"}).webhooks_allow_loopback is False
    assert Settings.from_env({**BASE, ALLOW_LOOPBACK_VAR: "TRUE"}).webhooks_allow_loopback is True


def test_anything_else_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=ALLOW_LOOPBACK_VAR):
        Settings.from_env({**BASE, ALLOW_LOOPBACK_VAR: "yes please"})


def test_production_refuses_to_start_with_it() -> None:
    production = {**BASE, "K_SERVICE": "apex-notify-worker"}
    assert Settings.from_env(production).webhooks_allow_loopback is False
    with pytest.raises(ConfigError, match=f"refusing to start in production.*{ALLOW_LOOPBACK_VAR}"):
        Settings.from_env({**production, ALLOW_LOOPBACK_VAR: "true"})
