"""Structured logs: one JSON object per line, with the `extra` fields of each call.

Secrets never reach a log line: values of keys that look secret are masked, and URLs lose
their user-info part, whatever a caller passes in `extra`.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import threading
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_SECRET_KEY = re.compile(r"pass|secret|token|api_?key|authorization|credential", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def _scrub(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key):
        return "***"
    if isinstance(value, str):
        return _URL_USERINFO.sub(r"\1***@", value)
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _scrub("message", record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = _scrub(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


_NOISY = ("kafka", "aiokafka", "faust", "mode", "httpx", "alembic")
_CLIENTS = ("kafka", "aiokafka", "faust", "mode")


class RepeatFilter(logging.Filter):
    """While a broker is away the Kafka clients log the same error every ~100 ms per connection
    (thousands of lines a minute, burying everything else). Of the client libraries' records,
    one per logger and message template is kept per window; the next one kept says how many
    were folded into it (`folded_repeats`)."""

    def __init__(self, window_s: float = 10.0) -> None:
        super().__init__()
        self._window_s = window_s
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(record.name == p or record.name.startswith(p + ".") for p in _CLIENTS):
            return True
        key = (record.name, str(record.msg))
        with self._lock:
            last, folded = self._seen.get(key, (float("-inf"), 0))
            if record.created - last < self._window_s:
                self._seen[key] = (last, folded + 1)
                return False
            self._seen[key] = (record.created, 0)
        if folded:
            record.folded_repeats = folded
        return True


def dict_config(level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    """The logging configuration, also handed to Faust's worker (which would otherwise replace it)."""
    level = level.upper()
    quiet = "WARNING" if logging.getLevelName(level) in (logging.DEBUG, logging.INFO) else level
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "filters": {"repeats": {"()": f"{__name__}.RepeatFilter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
                "filters": ["repeats"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {name: {"level": quiet} for name in _NOISY},
    }


def configure(level: str = "INFO", fmt: str = "json") -> None:
    logging.config.dictConfig(dict_config(level, fmt))
