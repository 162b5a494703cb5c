"""Answer writers: the text of an answer, written from the findings (DESIGN §8).

- ``DefaultWriter`` (``default.py``): deterministic, no network, no model; runs everywhere.
- ``GeminiWriter`` (``gemini.py``): Gemini phrases the same findings through
  ``google-genai``; its text is checked against the findings (``numbers.py``) and, if it
  fails the check or the call fails, the default answer is returned with the reason.

Every writer returns a ``WrittenAnswer``; the recommendations always come from the findings.
``make_writer(settings, project)`` builds the configured one, once per process.
"""

from __future__ import annotations

from shared.answer.default import DefaultWriter
from shared.answer.writer import AnswerWriter, WrittenAnswer
from shared.config import Settings


def make_writer(settings: Settings, project: str, *, ingest_url: str | None = None) -> AnswerWriter:
    """The writer ``settings.answer_writer`` names. ``project`` is the Vertex AI project;
    ``ingest_url``, when known, is the ``usage_ingest`` URL the onboarding answer gives."""
    default = DefaultWriter(ingest_url=ingest_url)
    if settings.answer_writer == "default":
        return default
    if settings.gemini is None:  # Settings.from_env always sets it for the gemini writer
        raise ValueError("answer_writer is gemini but the Gemini settings are missing")
    # Imported here: google-genai is only loaded by processes that use it.
    from shared.answer.gemini import GeminiWriter

    return GeminiWriter(settings.gemini, project, fallback=default)


__all__ = ["AnswerWriter", "DefaultWriter", "WrittenAnswer", "make_writer"]
