"""The time index after a series: the dates (or numbers) that continue a CSV's time column,
so a forecast's rows say when they are, not only how many steps ahead."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from deeprnn.errors import InputError

# Tried in order; a value matches a format only when it also prints back unchanged, so the
# forecast's dates are written as the input wrote its own ("1960-12" -> "1961-01").
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y/%m/%d", "%Y/%m")  # fmt: skip


def _parse(values: Sequence[str], fmt: str) -> list[dt.datetime] | None:
    out = []
    for v in values:
        try:
            d = dt.datetime.strptime(v, fmt)
        except ValueError:
            return None
        if d.strftime(fmt) != v:  # not zero-padded as the format writes it
            return None
        out.append(d)
    return out


def parse_dates(values: Sequence[str]) -> tuple[list[dt.datetime], str] | None:
    """(datetimes, format) when every value is a date in one of DATE_FORMATS, else None."""
    values = [v.strip() for v in values]
    if not values:
        return None
    for fmt in DATE_FORMATS:
        dates = _parse(values, fmt)
        if dates is not None:
            return dates, fmt
    return None


def _months(d: dt.datetime) -> int:
    return 12 * d.year + d.month - 1


def _add_months(d: dt.datetime, months: int, month_end: bool) -> dt.datetime:
    year, month = divmod(_months(d) + months, 12)
    first = d.replace(year=year, month=month + 1, day=1)
    if month_end:  # the last day of that month
        nxt = _add_months(first, 1, False)
        return nxt - dt.timedelta(days=1)
    return first.replace(day=d.day)


def _is_month_end(d: dt.datetime) -> bool:
    return (d + dt.timedelta(days=1)).day == 1


def next_dates(dates: Sequence[dt.datetime], n: int, name: str) -> list[dt.datetime]:
    """The `n` dates after `dates`, continuing their step: whole months (monthly,
    quarterly, yearly, on one day of the month or on month ends) or a fixed time span."""
    if len(dates) < 2:
        raise InputError(f"time column {name!r}: needs at least 2 dates to find the step")
    same_day = len({(d.day, d.time()) for d in dates}) == 1 and dates[0].day <= 28
    month_end = not same_day and all(_is_month_end(d) for d in dates)
    if same_day or month_end:
        gaps = {_months(b) - _months(a) for a, b in zip(dates, dates[1:])}
        if len(gaps) == 1 and (step := gaps.pop()) > 0:
            return [_add_months(dates[-1], step * k, month_end) for k in range(1, n + 1)]
    spans = {b - a for a, b in zip(dates, dates[1:])}
    if len(spans) == 1 and (span := spans.pop()) > dt.timedelta(0):
        return [dates[-1] + span * k for k in range(1, n + 1)]
    steps = sorted({b - a for a, b in zip(dates, dates[1:])})
    shown = ", ".join(_span(s) for s in steps[:3]) + (", ..." if len(steps) > 3 else "")
    raise InputError(
        f"time column {name!r} is not evenly spaced (steps {shown}), so the forecast's dates "
        "cannot be continued; pass --time-column none to number the steps instead"
    )


def _span(span: dt.timedelta) -> str:
    if span % dt.timedelta(days=1) == dt.timedelta(0):
        return f"{span.days} days"
    return str(span)


def continue_index(values: Sequence[str], n: int, name: str) -> list[str]:
    """The `n` index values after `values` (a CSV column, as text): dates in the column's
    own format, or integers continuing a constant integer step."""
    values = [v.strip() for v in values]
    parsed = parse_dates(values)
    if parsed is not None:
        dates, fmt = parsed
        return [d.strftime(fmt) for d in next_dates(dates, n, name)]
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        if all(parse_dates([v]) is not None for v in values):
            raise InputError(
                f"time column {name!r} mixes date formats (e.g. {values[0]!r} and "
                f"{next(v for v in values if v != values[0])!r}); write every date alike"
            ) from None
        raise InputError(
            f"time column {name!r} holds {_odd_one(values)!r}, "
            f"neither a date (e.g. 1960-12, 1960-12-31, 1960-12-31 23:00:00) nor an integer"
        ) from None
    gaps = {b - a for a, b in zip(numbers, numbers[1:])}
    if len(gaps) != 1 or (step := gaps.pop()) <= 0:
        raise InputError(
            f"time column {name!r}: integers without one constant increasing step; pass "
            "--time-column none to number the steps instead"
        )
    return [str(numbers[-1] + step * k) for k in range(1, n + 1)]


def _odd_one(values: Sequence[str]) -> str:
    """The first value that is neither a date nor an integer (else the first value)."""
    for v in values:
        try:
            int(v)
        except ValueError:
            if parse_dates([v]) is None:
                return v
    return values[0]


def find_time_column(header: Sequence[str], rows: Sequence[Sequence[str]], skip: str) -> str | None:
    """The first column other than `skip` whose every value is a date (None: no such column)."""
    for j, name in enumerate(header):
        if name != skip and parse_dates([r[j] for r in rows]) is not None:
            return name
    return None
