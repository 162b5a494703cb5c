"""Reporting periods: the API's period spec and its resolution to a UTC range.

A period is given either as ``{"start": ..., "end": ...}`` (ISO dates or datetimes) or as a
relative token from the closed set below. Resolution needs an injected ``now``; nothing here
reads the clock. Every resolved range is half-open ``[start, end)`` in UTC, non-empty and at
most ``MAX_PERIOD_DAYS`` long.

Relative tokens (days are UTC, weeks start on Monday):

- ``last_Nd`` (N in 1..366): the N days ending now, ``[now - N days, now)``.
- ``today``, ``this_week``, ``this_month``: from the start of the current day, ISO week or
  month up to the end of the current second (so never empty, even at midnight).
- ``yesterday``, ``last_week``, ``last_month``: the whole previous day, ISO week or month.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    RootModel,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

MAX_PERIOD_DAYS: Final = 366
# Usage is dated in Unix time, and the trend reads the period before a period: bounds outside
# these years would be meaningless, and near year 1 or 9999 the arithmetic leaves datetime's
# range (a 500 found by the OpenAPI fuzz).
FIRST_YEAR: Final = 1970
LAST_YEAR: Final = 9998
# Where a duration is needed (e.g. "last 3 months", monthly savings), a month is 30 days.
DAYS_PER_MONTH: Final = 30

_MAX_SPAN: Final = timedelta(days=MAX_PERIOD_DAYS)
_ONE_DAY: Final = timedelta(days=1)
_LAST_ND: Final = re.compile(r"last_([0-9]{1,3})d")
_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
CALENDAR_TOKENS: Final = (
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
)
_TOKEN_HELP: Final = (
    f"a period token must be one of {', '.join(CALENDAR_TOKENS)}, "
    f"or last_Nd with N in 1..{MAX_PERIOD_DAYS}"
)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def month_start(year: int, month: int) -> datetime:
    """Midnight UTC on the first of the month; ``month`` may overflow into later years."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


def to_date_end(now: datetime) -> datetime:
    """The end of the second containing ``now``: where a "so far" period stops."""
    return now.replace(microsecond=0) + timedelta(seconds=1)


def _require_aware(now: datetime) -> datetime:
    # A naive `now` is a programming error: guessing its zone would shift every range.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(UTC)


class PeriodRange(BaseModel):
    """A concrete half-open ``[start, end)`` UTC range, at most 366 days long."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @model_validator(mode="after")
    def _check_span(self) -> PeriodRange:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > _MAX_SPAN:
            raise ValueError(f"a period spans at most {MAX_PERIOD_DAYS} days")
        return self

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> PeriodRange:
        """The period of equal length that ends where this one starts (for trends)."""
        return PeriodRange(start=self.start - self.duration, end=self.start)

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (naive means UTC) falls inside ``[start, end)``."""
        return self.start <= as_utc(moment) < self.end


def resolve_token(token: str, now: datetime) -> PeriodRange:
    """Resolve a relative token (see the module docstring) against ``now``."""
    now = _require_aware(now)
    today = day_start(now.date())
    week = today - timedelta(days=today.weekday())
    month = month_start(today.year, today.month)
    match normalize_token(token):
        case "today":
            return PeriodRange(start=today, end=to_date_end(now))
        case "yesterday":
            return PeriodRange(start=today - _ONE_DAY, end=today)
        case "this_week":
            return PeriodRange(start=week, end=to_date_end(now))
        case "last_week":
            return PeriodRange(start=week - timedelta(days=7), end=week)
        case "this_month":
            return PeriodRange(start=month, end=to_date_end(now))
        case "last_month":
            return PeriodRange(start=month_start(today.year, today.month - 1), end=month)
        case last_nd:
            days = int(last_nd[len("last_") : -1])
            return PeriodRange(start=now - timedelta(days=days), end=now)


def normalize_token(token: str) -> str:
    """Lower-case and check a relative token; raise ``ValueError`` naming the allowed set."""
    normalized = token.strip().lower()
    if normalized in CALENDAR_TOKENS:
        return normalized
    match = _LAST_ND.fullmatch(normalized)
    if match is None or not 1 <= int(match.group(1)) <= MAX_PERIOD_DAYS:
        raise ValueError(_TOKEN_HELP)
    return f"last_{int(match.group(1))}d"


def _parse_bound(value: Any) -> Any:
    # Pydantic's lax date parsing would read "2026-10-01T00:00:00Z" as a date (and so as an
    # inclusive day); only a bare YYYY-MM-DD string is a date here, anything else a datetime.
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"expected an ISO 8601 date or datetime ({error})") from None


def _check_year(value: date | datetime) -> date | datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"the year must be within {FIRST_YEAR}..{LAST_YEAR}")
    return value


Bound = Annotated[date | datetime, BeforeValidator(_parse_bound), AfterValidator(_check_year)]


def _bound_start(value: date | datetime) -> datetime:
    return as_utc(value) if isinstance(value, datetime) else day_start(value)


def _bound_end(value: date | datetime) -> datetime:
    # A bare date as end is inclusive: {"start": "2026-10-01", "end": "2026-10-31"} is October.
    return as_utc(value) if isinstance(value, datetime) else day_start(value) + _ONE_DAY


class AbsolutePeriod(BaseModel):
    """``{"start", "end"}``: ISO dates (``end`` inclusive) or datetimes (``end`` exclusive).

    Naive datetimes are UTC. The resolved range must be non-empty and at most 366 days.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: Bound
    end: Bound

    @field_validator("end")
    @classmethod
    def _check_end(cls, end: date | datetime, info: ValidationInfo) -> date | datetime:
        start = info.data.get("start")
        if start is None:  # start itself failed validation and is reported on its own
            return end
        begin, finish = _bound_start(start), _bound_end(end)
        if finish <= begin:
            raise ValueError("end must be after start")
        if finish - begin > _MAX_SPAN:
            raise ValueError(f"end must be at most {MAX_PERIOD_DAYS} days after start")
        return end

    def resolve(self) -> PeriodRange:
        return PeriodRange(start=_bound_start(self.start), end=_bound_end(self.end))


RelativeToken = Annotated[
    str, BeforeValidator(lambda v: normalize_token(v) if isinstance(v, str) else v)
]


def _period_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "token"
    if isinstance(value, dict | AbsolutePeriod):
        return "range"
    return None


class PeriodSpec(
    RootModel[
        Annotated[
            Annotated[AbsolutePeriod, Tag("range")] | Annotated[RelativeToken, Tag("token")],
            Discriminator(
                _period_kind,
                custom_error_type="period_type",
                custom_error_message=(
                    "period must be a token such as last_7d or an object with start and end"
                ),
            ),
        ]
    ]
):
    """The API's ``period``: a relative token (``"last_30d"``) or ``{"start", "end"}``."""

    def resolve(self, now: datetime) -> PeriodRange:
        """The concrete range; ``now`` (timezone-aware) anchors relative tokens."""
        if isinstance(self.root, AbsolutePeriod):
            return self.root.resolve()
        return resolve_token(self.root, now)
