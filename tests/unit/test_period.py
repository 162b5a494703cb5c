"""The period spec: tokens, explicit ranges, validation errors and resolution against `now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared.models.period import (
    CALENDAR_TOKENS,
    MAX_PERIOD_DAYS,
    AbsolutePeriod,
    PeriodRange,
    PeriodSpec,
    normalize_token,
    resolve_token,
)

# A Thursday afternoon, with sub-second precision to catch rounding.
NOW = datetime(2026, 11, 12, 15, 30, 45, 123456, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


class Request(BaseModel):
    """Stands in for an API request body with a `period` field."""

    period: PeriodSpec


def errors_of(period: object) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        Request.model_validate({"period": period})
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("token", "start", "end"),
    [
        ("today", utc(2026, 11, 12), utc(2026, 11, 12, 15, 30, 46)),
        ("yesterday", utc(2026, 11, 11), utc(2026, 11, 12)),
        ("this_week", utc(2026, 11, 9), utc(2026, 11, 12, 15, 30, 46)),
        ("last_week", utc(2026, 11, 2), utc(2026, 11, 9)),
        ("this_month", utc(2026, 11, 1), utc(2026, 11, 12, 15, 30, 46)),
        ("last_month", utc(2026, 10, 1), utc(2026, 11, 1)),
        ("last_1d", NOW - timedelta(days=1), NOW),
        ("last_7d", NOW - timedelta(days=7), NOW),
        ("last_30d", NOW - timedelta(days=30), NOW),
        ("last_366d", NOW - timedelta(days=366), NOW),
    ],
)
def test_tokens_resolve_to_utc_ranges(token: str, start: datetime, end: datetime) -> None:
    period = Request.model_validate({"period": token}).period.resolve(NOW)
    assert (period.start, period.end) == (start, end)


def test_last_month_in_january_is_previous_december() -> None:
    period = resolve_token("last_month", utc(2027, 1, 5, 8))
    assert (period.start, period.end) == (utc(2026, 12, 1), utc(2027, 1, 1))


def test_this_week_on_sunday_starts_on_monday() -> None:
    period = resolve_token("this_week", utc(2026, 11, 15, 23, 59))
    assert period.start == utc(2026, 11, 9)


def test_to_date_periods_are_not_empty_at_midnight() -> None:
    midnight = utc(2026, 11, 1)
    for token in ("today", "this_week", "this_month"):
        period = resolve_token(token, midnight)
        assert period.start <= midnight < period.end


def test_now_in_another_zone_means_the_same_instant() -> None:
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))  # already 13 Nov there
    assert resolve_token("today", tokyo) == resolve_token("today", NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve_token("today", datetime(2026, 11, 12, 15))


@pytest.mark.parametrize(("raw", "normalized"), [(" Last_07D ", "last_7d"), ("TODAY", "today")])
def test_tokens_are_normalized(raw: str, normalized: str) -> None:
    assert normalize_token(raw) == normalized
    assert Request.model_validate({"period": raw}).period.root == normalized


@pytest.mark.parametrize("bad", ["last_0d", "last_367d", "last_7", "last_-1d", "forever", ""])
def test_bad_tokens_name_the_allowed_set(bad: str) -> None:
    [(loc, message)] = errors_of(bad)
    assert loc[0] == "period"
    assert "last_Nd with N in 1..366" in message
    assert all(token in message for token in CALENDAR_TOKENS)


def test_a_period_of_the_wrong_type_is_explained() -> None:
    [(loc, message)] = errors_of(7)
    assert loc == ("period",)
    assert "last_7d" in message
    assert "start and end" in message


def test_date_bounds_are_whole_days_with_an_inclusive_end() -> None:
    period = Request.model_validate(
        {"period": {"start": "2026-10-01", "end": "2026-10-31"}}
    ).period.resolve(NOW)
    assert (period.start, period.end) == (utc(2026, 10, 1), utc(2026, 11, 1))


def test_a_single_date_is_one_day() -> None:
    period = AbsolutePeriod.model_validate({"start": "2026-10-05", "end": "2026-10-05"}).resolve()
    assert period.duration == timedelta(days=1)


def test_datetime_bounds_are_exclusive_and_converted_to_utc() -> None:
    spec = {"start": "2026-10-01T00:00:00Z", "end": "2026-10-31T02:00:00+02:00"}
    period = AbsolutePeriod.model_validate(spec).resolve()
    assert (period.start, period.end) == (utc(2026, 10, 1), utc(2026, 10, 31))


def test_midnight_datetime_end_is_not_read_as_a_date() -> None:
    spec = {"start": "2026-10-01", "end": "2026-10-02T00:00:00Z"}
    assert AbsolutePeriod.model_validate(spec).resolve().end == utc(2026, 10, 2)


def test_naive_datetimes_are_utc() -> None:
    period = AbsolutePeriod.model_validate(
        {"start": "2026-10-01T06:00:00", "end": "2026-10-01T18:00:00"}
    ).resolve()
    assert period.start == utc(2026, 10, 1, 6)
    assert period.end.tzinfo is UTC


def test_end_before_start_is_reported_on_end() -> None:
    assert errors_of({"start": "2026-10-05", "end": "2026-10-04"}) == [
        (("period", "range", "end"), "Value error, end must be after start")
    ]
    assert errors_of({"start": "2026-10-05T10:00:00Z", "end": "2026-10-05T10:00:00Z"}) == [
        (("period", "range", "end"), "Value error, end must be after start")
    ]


def test_span_is_limited_to_366_days() -> None:
    ok = AbsolutePeriod.model_validate({"start": "2024-01-01", "end": "2024-12-31"}).resolve()
    assert ok.duration == timedelta(days=MAX_PERIOD_DAYS)
    [(loc, message)] = errors_of({"start": "2025-01-01", "end": "2026-01-02"})
    assert loc == ("period", "range", "end")
    assert "at most 366 days" in message


def test_malformed_and_missing_bounds_name_the_field() -> None:
    [(loc, message)] = errors_of({"start": "last tuesday", "end": "2026-10-04"})
    assert loc == ("period", "range", "start")
    assert "ISO 8601" in message
    assert errors_of({"start": "2026-10-01"}) == [(("period", "range", "end"), "Field required")]
    [(loc, _)] = errors_of({"start": "2026-10-01", "end": "2026-10-02", "tz": "utc"})
    assert loc == ("period", "range", "tz")


def test_spec_serializes_as_it_was_given() -> None:
    for raw in ('"last_7d"', '{"start":"2026-10-01","end":"2026-10-31"}'):
        body = f'{{"period":{raw}}}'
        assert Request.model_validate_json(body).model_dump_json() == body


def test_previous_period_is_adjacent_and_as_long() -> None:
    period = resolve_token("last_month", NOW)
    previous = period.previous()
    assert previous.end == period.start
    assert previous.duration == period.duration == timedelta(days=31)


def test_range_is_half_open() -> None:
    period = resolve_token("yesterday", NOW)
    assert period.contains(utc(2026, 11, 11))
    assert period.contains(datetime(2026, 11, 11, 23, 59, 59))  # naive means UTC
    assert not period.contains(utc(2026, 11, 12))
    assert not period.contains(utc(2026, 11, 10, 23, 59, 59))


def test_period_range_rejects_empty_and_too_long() -> None:
    with pytest.raises(ValidationError, match="end must be after start"):
        PeriodRange(start=NOW, end=NOW)
    with pytest.raises(ValidationError, match="at most 366 days"):
        PeriodRange(start=NOW - timedelta(days=367), end=NOW)


aware_nows = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-8)), timezone(timedelta(hours=13))]),
)
tokens = st.sampled_from(CALENDAR_TOKENS) | st.integers(1, MAX_PERIOD_DAYS).map(
    lambda n: f"last_{n}d"
)


@given(token=tokens, now=aware_nows)
def test_every_token_resolves_to_a_valid_range(token: str, now: datetime) -> None:
    period = resolve_token(token, now)
    assert timedelta(0) < period.duration <= timedelta(days=MAX_PERIOD_DAYS)
    assert period.start.tzinfo is UTC
    assert period.end.tzinfo is UTC
    previous = period.previous()
    assert previous.end == period.start
    assert previous.duration == period.duration
    if token not in CALENDAR_TOKENS:
        assert period.end == now
        assert period.duration == timedelta(days=int(token[5:-1]))
    else:
        assert period.start.time() == datetime.min.time()
        assert period.start <= now
    if token in ("today", "this_week", "this_month"):
        assert period.contains(now)
    if token in ("yesterday", "last_week", "last_month"):
        assert period.end <= now
        assert period.end.time() == datetime.min.time()


@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 1, 1)),
    days=st.integers(-400, 400),
)
def test_date_ranges_are_accepted_exactly_when_1_to_366_days(start: date, days: int) -> None:
    end = start + timedelta(days=days)
    spec = {"start": start.isoformat(), "end": end.isoformat()}
    if 0 <= days < MAX_PERIOD_DAYS:
        period = AbsolutePeriod.model_validate(spec).resolve()
        assert period.duration == timedelta(days=days + 1)
    else:
        with pytest.raises(ValidationError):
            AbsolutePeriod.model_validate(spec)


@pytest.mark.parametrize(
    "bounds",
    [
        {"start": "0001-01-01", "end": "0001-01-01"},  # the trend's previous period: overflow
        {"start": "1969-12-31", "end": "1970-01-02"},
        {"start": "9999-12-01", "end": "9999-12-31"},  # an inclusive end: overflow
        {"start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z"},
    ],
)
def test_bounds_outside_the_years_of_usage_are_refused(bounds: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match=r"the year must be within 1970\.\.9998"):
        PeriodSpec.model_validate(bounds)
