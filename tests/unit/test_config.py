from __future__ import annotations

import pytest

from shared.config import ConfigError, Settings

BASE = {"GOOGLE_CLOUD_PROJECT": "demo-apex"}


def test_defaults_follow_the_design() -> None:
    s = Settings.from_env(BASE)
    assert (s.function_calls_per_minute, s.chat_messages_per_minute) == (120, 30)
    assert not s.production


@pytest.mark.parametrize(
    "var", ["FIREBASE_AUTH_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"]
)
def test_production_refuses_any_emulator(var: str) -> None:
    with pytest.raises(ConfigError, match=f"refusing to start in production.*{var}"):
        Settings.from_env({**BASE, "K_SERVICE": "agents-execute", var: "127.0.0.1:1"})


def test_production_without_emulators_starts() -> None:
    assert Settings.from_env({**BASE, "K_SERVICE": "agents-execute"}).production


def test_missing_project_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        Settings.from_env({})


def test_bad_number_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="APEX_CHAT_MESSAGES_PER_MINUTE"):
        Settings.from_env({**BASE, "APEX_CHAT_MESSAGES_PER_MINUTE": "lots"})


def test_cors_origins_are_a_list() -> None:
    s = Settings.from_env({**BASE, "APEX_CORS_ORIGINS": "https://a.example, https://b.example"})
    assert s.cors_origins == ("https://a.example", "https://b.example")


def test_default_writer_needs_no_gemini_settings() -> None:
    s = Settings.from_env(BASE)
    assert (s.answer_writer, s.gemini) == ("default", None)


def test_gemini_writer_needs_a_way_in() -> None:
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        Settings.from_env({**BASE, "APEX_ANSWER_WRITER": "gemini"})
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_LOCATION"):
        Settings.from_env(
            {**BASE, "APEX_ANSWER_WRITER": "gemini", "GOOGLE_GENAI_USE_VERTEXAI": "true"}
        )


def test_gemini_on_vertex() -> None:
    s = Settings.from_env(
        {
            **BASE,
            "APEX_ANSWER_WRITER": "gemini",
            "GOOGLE_GENAI_USE_VERTEXAI": "true",
            "GOOGLE_CLOUD_LOCATION": "europe-west1",
        }
    )
    assert s.gemini is not None
    assert (s.gemini.use_vertexai, s.gemini.location, s.gemini.model) == (
        True,
        "europe-west1",
        "gemini-2.5-flash",
    )


def test_unknown_writer_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="APEX_ANSWER_WRITER"):
        Settings.from_env({**BASE, "APEX_ANSWER_WRITER": "gpt"})


def test_api_key_never_in_repr() -> None:
    s = Settings.from_env({**BASE, "APEX_ANSWER_WRITER": "gemini", "GEMINI_API_KEY": "sekrit"})
    assert "sekrit" not in repr(s)
