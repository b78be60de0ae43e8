"""Publication times as downloaded datasets write them.

Tried in order: ISO 8601 (`2026-11-30T09:15:00Z`, `2026-11-30 09:15`, `2026-11-30`), Unix time in
seconds or milliseconds, RFC 2822 (`Mon, 30 Nov 2026 09:15:00 GMT`, as feeds write it), then the
common spelled-out and numeric forms below. Numeric dates are read month first (`11/30/2026`, the
US datasets' order) unless `day_first`; an explicit strptime `fmt` skips the guessing. A time
without a zone is taken to be in `assume_tz` (UTC unless told): a dataset of naive times would
otherwise be unloadable, and the choice is the operator's flag, not a silent guess per row.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, tzinfo

_RFC_2822 = re.compile(r"^([A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}(:\d{2})?\s+\S+$")

_SPELLED = (
    "%b %d, %Y",
    "%B %d, %Y",
    "%b %d %Y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y %I:%M %p",
    "%B %d, %Y %I:%M %p",
    "%b %d, %Y %H:%M",
    "%d %b %Y %H:%M",
    "%d %b %Y %H:%M:%S",
    "%a, %d %b %Y",
    "%Y%m%d",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
)
_MONTH_FIRST = (
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%y",
    "%m-%d-%Y",
)
_DAY_FIRST = (
    "%d/%m/%Y",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d.%m.%Y",
    "%d.%m.%Y %H:%M",
    "%d/%m/%y",
    "%d-%m-%Y",
)


def parse_when(
    value: object, *, fmt: str | None = None, day_first: bool = False, assume_tz: tzinfo = UTC
) -> datetime | None:
    """The time `value` names, zone-aware; None for an empty value; ValueError when unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    parsed = _parse(text, fmt, day_first)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=assume_tz)
    return parsed


def _parse(text: str, fmt: str | None, day_first: bool) -> datetime:
    if fmt:
        try:
            return datetime.strptime(text, fmt)
        except ValueError as exc:
            raise ValueError(f"date {text[:60]!r} does not match --date-format {fmt!r}") from exc
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    if text.isdigit() and 9 <= len(text) <= 13:
        seconds = int(text) / (1000 if len(text) == 13 else 1)
        return datetime.fromtimestamp(seconds, UTC)
    # email.utils reads almost anything and drops what it does not know ("2:30 PM" became 02:30):
    # it is only asked about text shaped like RFC 2822.
    if _RFC_2822.match(text):
        try:
            return email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            pass
    numeric = _DAY_FIRST if day_first else _MONTH_FIRST
    for candidate in (*_SPELLED, *numeric):
        try:
            return datetime.strptime(text, candidate)
        except ValueError:
            continue
    raise ValueError(f"unrecognised date {text[:60]!r}; give its format with --date-format (strptime codes)")
