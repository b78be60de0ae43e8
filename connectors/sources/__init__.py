"""News sources: each yields validated `NewsItem`s and reports the rows it could not use.

One small, consistent API for every source (river-style): `items()` is an iterator of
`NewsItem`; rows that cannot become an item are passed to `on_error(where, reason)` instead of
stopping the whole source.

Part of `connectors`: imports nothing from `models`, `alerts` or `pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable

ErrorHandler = Callable[[str, str], None]


def ignore_errors(where: str, reason: str) -> None:
    """Default handler for callers that count nothing."""
