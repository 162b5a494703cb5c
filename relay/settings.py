"""The relay's own settings, beside ``shared.config.Settings`` (which it reads too).

Read once at start-up; a missing or malformed variable stops the process naming it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.config import ConfigError

DEFAULT_AUTH_TIMEOUT_S: Final = 10.0
_ENV_NAMES: Final = {
    "firebase_api_key": "APEX_FIREBASE_API_KEY",
    "firebase_auth_domain": "APEX_FIREBASE_AUTH_DOMAIN",
    "threads_get_url": "APEX_THREADS_GET_URL",
    "workspaces_url": "APEX_WORKSPACES_URL",
    "agents_data_url": "APEX_AGENTS_DATA_URL",
    "agents_optimization_url": "APEX_AGENTS_OPTIMIZATION_URL",
    "auth_timeout_s": "APEX_RELAY_AUTH_TIMEOUT_S",
}


class RelaySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    firebase_api_key: str = Field(min_length=1, max_length=200)
    firebase_auth_domain: str = Field(min_length=1, max_length=255)
    threads_get_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    workspaces_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    # The dashboard's figures (DESIGN §12) come from these two functions.
    agents_data_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    agents_optimization_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    auth_timeout_s: float = Field(gt=0, le=300)
    # This instance: its subscription's name and the runs' `relay` attribute.
    relay_id: str = Field(pattern=r"^[a-z][a-z0-9-]{0,60}$")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RelaySettings:
        env = os.environ if env is None else env
        values = {field: env.get(name, "") for field, name in _ENV_NAMES.items()}
        values["auth_timeout_s"] = values["auth_timeout_s"] or str(DEFAULT_AUTH_TIMEOUT_S)
        values["relay_id"] = new_relay_id(env.get("K_REVISION", "local"))
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            problems = [
                f"{_ENV_NAMES.get(str(item['loc'][0]), item['loc'][0])}: {item['msg']}"
                for item in e.errors()
            ]
            raise ConfigError("invalid relay settings: " + "; ".join(problems)) from e


def new_relay_id(revision: str) -> str:
    """``{revision}-{random}``: each process its own id, even two of one revision."""
    base = "".join(c if c.isalnum() else "-" for c in revision.lower()).strip("-")[:40]
    if not base or not base[0].isalpha():
        base = f"r-{base}".rstrip("-")
    return f"{base}-{secrets.token_hex(4)}"
