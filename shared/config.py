"""Settings, read from the environment once and validated at start-up.

A missing or malformed setting stops the process with a message naming the variable; a
production process (Cloud Run / Cloud Functions set `K_SERVICE`) refuses to start with any
emulator variable set, since firebase-admin then trusts unsigned tokens (DESIGN §7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

EMULATOR_VARS = ("FIREBASE_AUTH_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")

PositiveInt = Annotated[int, Field(ge=1, le=1_000_000)]


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=6, max_length=30, pattern=r"^[a-z][a-z0-9-]+$")
    production: bool
    auth_emulator_host: str | None
    firestore_emulator_host: str | None
    pubsub_emulator_host: str | None
    cors_origins: tuple[str, ...]
    function_calls_per_minute: PositiveInt
    chat_messages_per_minute: PositiveInt

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        production = bool(env.get("K_SERVICE"))
        emulators = [v for v in EMULATOR_VARS if env.get(v)]
        if production and emulators:
            raise ConfigError(
                f"refusing to start in production (K_SERVICE={env['K_SERVICE']}) with "
                f"{', '.join(emulators)} set: firebase-admin would accept unsigned tokens."
            )
        project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT")
        if not project:
            raise ConfigError("GOOGLE_CLOUD_PROJECT is not set: Apex needs its project id.")
        origins = tuple(o.strip() for o in env.get("APEX_CORS_ORIGINS", "").split(",") if o.strip())
        try:
            return cls.model_validate(
                {
                    "project": project,
                    "production": production,
                    "auth_emulator_host": env.get("FIREBASE_AUTH_EMULATOR_HOST") or None,
                    "firestore_emulator_host": env.get("FIRESTORE_EMULATOR_HOST") or None,
                    "pubsub_emulator_host": env.get("PUBSUB_EMULATOR_HOST") or None,
                    "cors_origins": origins,
                    "function_calls_per_minute": env.get("APEX_FUNCTION_CALLS_PER_MINUTE", "120"),
                    "chat_messages_per_minute": env.get("APEX_CHAT_MESSAGES_PER_MINUTE", "30"),
                }
            )
        except ValidationError as e:
            raise ConfigError(_explain(e)) from e


_ENV_NAMES = {
    "project": "GOOGLE_CLOUD_PROJECT",
    "cors_origins": "APEX_CORS_ORIGINS",
    "function_calls_per_minute": "APEX_FUNCTION_CALLS_PER_MINUTE",
    "chat_messages_per_minute": "APEX_CHAT_MESSAGES_PER_MINUTE",
}


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        parts.append(f"{_ENV_NAMES.get(field, field)}: {item['msg']}")
    return "invalid settings: " + "; ".join(parts)
