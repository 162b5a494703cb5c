"""Settings, read from the environment once and validated at start-up.

A missing or malformed setting stops the process with a message naming the variable; a
production process (Cloud Run / Cloud Functions set `K_SERVICE`) refuses to start with any
emulator variable set, since firebase-admin then trusts unsigned tokens (DESIGN §7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

EMULATOR_VARS = ("FIREBASE_AUTH_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")
# Lets webhooks reach loopback receivers (http too): the local stack's only (DESIGN §11);
# refused in production like the emulator variables, so not in ENV_VARS either.
ALLOW_LOOPBACK_VAR = "APEX_WEBHOOKS_ALLOW_LOOPBACK"

PositiveInt = Annotated[int, Field(ge=1, le=1_000_000)]
# DESIGN §9: a removed member or a revoked key stops working within 10 s.
MAX_ACCESS_CACHE_S: Final = 10.0
MIN_PEPPER_CHARS: Final = 32


Workload = Literal["public_functions", "workers", "relay"]


class EnvVar(BaseModel):
    """One environment variable Apex reads: who reads it, and whether it must be set."""

    model_config = ConfigDict(frozen=True)

    readers: frozenset[Workload]
    required: bool
    description: str


_ALL: Final[frozenset[Workload]] = frozenset({"public_functions", "workers", "relay"})
_WRITERS: Final[frozenset[Workload]] = frozenset({"workers", "public_functions"})

# Every variable the code reads (the infra tests check Terraform sets each on its readers).
# Emulator variables are local-only and refused in production, so they are not listed.
ENV_VARS: Final[dict[str, EnvVar]] = {
    "GOOGLE_CLOUD_PROJECT": EnvVar(readers=_ALL, required=True, description="project id"),
    "APEX_CORS_ORIGINS": EnvVar(
        readers=frozenset({"public_functions", "relay"}),
        required=True,
        description="comma-separated origins allowed to call the functions and the relay",
    ),
    "APEX_FUNCTION_CALLS_PER_MINUTE": EnvVar(
        readers=frozenset({"public_functions"}),
        required=False,
        description="per-user limit on public function calls (default 120)",
    ),
    "APEX_CHAT_MESSAGES_PER_MINUTE": EnvVar(
        readers=frozenset({"public_functions", "relay"}),
        required=False,
        description="per-user limit on chat messages, relay and agents_execute (default 30)",
    ),
    "APEX_WORKSPACE_CALLS_PER_MINUTE": EnvVar(
        readers=frozenset({"public_functions"}),
        required=False,
        description="per-workspace limit on public function calls, API keys included (6000)",
    ),
    "APEX_KEY_PEPPER": EnvVar(
        readers=frozenset({"public_functions"}),
        required=True,
        description="pepper of the API keys' HMAC (a Secret Manager secret env ref)",
    ),
    "APEX_ACCESS_CACHE_S": EnvVar(
        readers=frozenset({"public_functions", "relay"}),
        required=False,
        description="seconds a membership or key check may be cached, 0..10 (default 10)",
    ),
    "APEX_WORKSPACES_URL": EnvVar(
        readers=frozenset({"relay"}),
        required=True,
        description="URL of the workspaces function, for the chat page (/config.json)",
    ),
    "APEX_FIREBASE_API_KEY": EnvVar(
        readers=frozenset({"relay"}),
        required=True,
        description="Firebase web API key, for the chat page's sign-in (/config.json)",
    ),
    "APEX_FIREBASE_AUTH_DOMAIN": EnvVar(
        readers=frozenset({"relay"}),
        required=True,
        description="Firebase Auth domain, for the chat page's sign-in (/config.json)",
    ),
    "APEX_THREADS_GET_URL": EnvVar(
        readers=frozenset({"relay"}),
        required=True,
        description="URL of the threads_get function, for the chat page (/config.json)",
    ),
    "APEX_AGENTS_DATA_URL": EnvVar(
        readers=frozenset({"relay"}),
        required=True,
        description="URL of the agents_data function, for the dashboard (/config.json)",
    ),
    "APEX_AGENTS_OPTIMIZATION_URL": EnvVar(
        readers=frozenset({"relay"}),
        required=True,
        description="URL of the agents_optimization function, for the dashboard (/config.json)",
    ),
    "APEX_RELAY_AUTH_TIMEOUT_S": EnvVar(
        readers=frozenset({"relay"}),
        required=False,
        description="seconds a new WebSocket has to authenticate (default 10)",
    ),
    "APEX_ANSWER_WRITER": EnvVar(
        readers=_WRITERS,
        required=False,
        description="`default` (no model) or `gemini` (google-genai phrases the findings)",
    ),
    "APEX_GEMINI_MODEL": EnvVar(
        readers=_WRITERS, required=False, description="Gemini model id for the gemini writer"
    ),
    "GOOGLE_GENAI_USE_VERTEXAI": EnvVar(
        readers=_WRITERS,
        required=False,
        description="`true`: Gemini through Vertex AI with the service account's rights",
    ),
    "GOOGLE_CLOUD_LOCATION": EnvVar(
        readers=_WRITERS, required=False, description="Vertex AI location for Gemini"
    ),
    "GEMINI_API_KEY": EnvVar(
        readers=_WRITERS,
        required=False,
        description="Gemini API key (a Secret Manager secret env ref; instead of Vertex AI)",
    ),
    "APEX_BUDGET_TICK_S": EnvVar(
        readers=frozenset(),
        required=False,
        description=(
            "the local stack only (devstack): seconds between budget ticks, default 60; in "
            "GCP Cloud Scheduler publishes the tick every minute (infra/scheduler.tf)"
        ),
    ),
    "APEX_GEMINI_BASE_URL": EnvVar(
        readers=_WRITERS,
        required=False,
        description="override of the Gemini endpoint (a proxy; the tests' local server)",
    ),
}

AnswerWriterName = Literal["default", "gemini"]


class GeminiSettings(BaseModel):
    """How the gemini answer writer reaches Gemini: Vertex AI (location) or an API key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, max_length=100)
    use_vertexai: bool
    location: str | None
    api_key: str | None = Field(default=None, repr=False)
    base_url: str | None

    @model_validator(mode="after")
    def _one_way_in(self) -> GeminiSettings:
        if self.use_vertexai and not self.location:
            raise ValueError("GOOGLE_CLOUD_LOCATION must be set when GOOGLE_GENAI_USE_VERTEXAI")
        if not self.use_vertexai and not self.api_key:
            raise ValueError("set GEMINI_API_KEY, or GOOGLE_GENAI_USE_VERTEXAI=true")
        return self


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
    workspace_calls_per_minute: PositiveInt
    # Optional here (the workers and the relay never see a key); the public functions
    # refuse to check or create a key without it (``shared.access``).
    key_pepper: SecretStr | None = None
    access_cache_s: float = Field(ge=0, le=MAX_ACCESS_CACHE_S)
    answer_writer: AnswerWriterName
    gemini: GeminiSettings | None
    webhooks_allow_loopback: bool = False

    @field_validator("key_pepper")
    @classmethod
    def _long_pepper(cls, pepper: SecretStr | None) -> SecretStr | None:
        if pepper is not None and len(pepper.get_secret_value()) < MIN_PEPPER_CHARS:
            raise ValueError(f"must be at least {MIN_PEPPER_CHARS} characters")
        return pepper

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        production = bool(env.get("K_SERVICE"))
        emulators = [v for v in EMULATOR_VARS if env.get(v)]
        if production and emulators:
            raise ConfigError(
                f"refusing to start in production (K_SERVICE={env['K_SERVICE']}) with "
                f"{', '.join(emulators)} set: firebase-admin would accept unsigned tokens."
            )
        allow_loopback = env.get(ALLOW_LOOPBACK_VAR, "").lower()
        if allow_loopback not in ("", "true", "false"):
            raise ConfigError(f"{ALLOW_LOOPBACK_VAR} must be true or false, not {allow_loopback!r}")
        if production and allow_loopback == "true":
            raise ConfigError(
                f"refusing to start in production (K_SERVICE={env['K_SERVICE']}) with "
                f"{ALLOW_LOOPBACK_VAR}=true: webhooks could reach the service's own host."
            )
        project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT")
        if not project:
            raise ConfigError("GOOGLE_CLOUD_PROJECT is not set: Apex needs its project id.")
        writer = env.get("APEX_ANSWER_WRITER", "default")
        gemini = None
        if writer == "gemini":
            gemini = {
                "model": env.get("APEX_GEMINI_MODEL", "gemini-2.5-flash"),
                "use_vertexai": env.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true"),
                "location": env.get("GOOGLE_CLOUD_LOCATION") or None,
                "api_key": env.get("GEMINI_API_KEY") or None,
                "base_url": env.get("APEX_GEMINI_BASE_URL") or None,
            }
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
                    "workspace_calls_per_minute": env.get(
                        "APEX_WORKSPACE_CALLS_PER_MINUTE", "6000"
                    ),
                    "key_pepper": env.get("APEX_KEY_PEPPER") or None,
                    "access_cache_s": env.get("APEX_ACCESS_CACHE_S", str(MAX_ACCESS_CACHE_S)),
                    "answer_writer": writer,
                    "gemini": gemini,
                    "webhooks_allow_loopback": allow_loopback == "true",
                }
            )
        except ValidationError as e:
            raise ConfigError(_explain(e)) from e


_ENV_NAMES = {
    "project": "GOOGLE_CLOUD_PROJECT",
    "cors_origins": "APEX_CORS_ORIGINS",
    "function_calls_per_minute": "APEX_FUNCTION_CALLS_PER_MINUTE",
    "chat_messages_per_minute": "APEX_CHAT_MESSAGES_PER_MINUTE",
    "workspace_calls_per_minute": "APEX_WORKSPACE_CALLS_PER_MINUTE",
    "key_pepper": "APEX_KEY_PEPPER",
    "access_cache_s": "APEX_ACCESS_CACHE_S",
    "answer_writer": "APEX_ANSWER_WRITER",
    "gemini": "APEX_GEMINI_MODEL/GOOGLE_GENAI_USE_VERTEXAI/GOOGLE_CLOUD_LOCATION/GEMINI_API_KEY",
}


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        parts.append(f"{_ENV_NAMES.get(field, field)}: {item['msg']}")
    return "invalid settings: " + "; ".join(parts)
