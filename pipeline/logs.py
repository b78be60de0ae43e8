"""Structured logs: one JSON object per line, with the `extra` fields of each call.

Secrets never reach a log line: values of keys that look secret are masked, and URLs lose
their user-info part, whatever a caller passes in `extra`.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
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
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {name: {"level": quiet} for name in _NOISY},
    }


def configure(level: str = "INFO", fmt: str = "json") -> None:
    logging.config.dictConfig(dict_config(level, fmt))
