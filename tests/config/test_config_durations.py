"""Durations: strings with a unit only."""

from __future__ import annotations

import datetime

import pytest

from hotstandby.config.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("0s", 0.0),
        (" 5 s ", 5.0),
        ("10ms", 0.01),
    ],
)
def test_parses_durations_with_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["5", "", "s", "-1s", "1e3ms", "1.s", ".5s", "5 sec", "1m30s", "5S", "inf s", "1us"]
)
def test_rejects_malformed_strings(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert info.value.found.startswith('"')


@pytest.mark.parametrize(("number", "hint"), [(5, '"5s"'), (1.5, '"1.5s"')])
def test_rejects_numbers_suggesting_seconds(number: float, hint: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(number)
    assert f"the number {number}" in info.value.found
    assert hint in info.value.found
    assert "expected a duration with a unit" in str(info.value)


@pytest.mark.parametrize(
    ("value", "found"),
    [(True, "true"), ([1], "an array"), ({}, "a table"), (datetime.time(1, 2), "01:02:00")],
)
def test_rejects_other_types(value: object, found: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert found in info.value.found


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "200ms"), (1.5, "1.5s"), (12.0, "12s"), (120.0, "2m"), (150.0, "2m30s")],
)
def test_formats_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
