"""The answer writer protocol (`AnswerWriter`) and what every writer returns (`WrittenAnswer`)."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from shared.models.findings import Answer, Findings

WriterName = Literal["default", "gemini"]


class WrittenAnswer(BaseModel):
    """An answer and who wrote it.

    ``writer`` is the writer whose text the answer carries. ``fallback_reason`` says why the
    configured writer's text was not used (the LLM call failed, or its text held numbers
    the findings lack); ``None`` when nothing fell back. The pipeline puts both in its event.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: Answer
    writer: WriterName
    fallback_reason: str | None = None


class AnswerWriter(Protocol):
    """Writes the answer to one question from what the agents found."""

    def write(self, findings: Findings) -> WrittenAnswer: ...
