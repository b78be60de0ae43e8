"""Company names → tickers, so an item about "Tesla" counts for TSLA without a cashtag.

The directory is data (`connectors/companies.yaml`); one compiled pattern matches every name as a
whole word, longest names first ("Bank of America" before a shorter name inside it).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

DIRECTORY = Path(__file__).with_name("companies.yaml")


@lru_cache(maxsize=4)
def _matcher(path: Path) -> tuple[re.Pattern[str], dict[str, str]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    by_name: dict[str, str] = {}
    for ticker, names in document.items():
        for name in names:
            by_name[str(name)] = str(ticker).upper()
    names = sorted(by_name, key=len, reverse=True)
    pattern = r"(?<![\w$])(" + "|".join(re.escape(n) for n in names) + r")(?![\w])"
    return re.compile(pattern), by_name


def company_tickers(*texts: str, directory: Path = DIRECTORY) -> list[str]:
    """Tickers of the companies named in the texts, in order of first mention, without repeats."""
    pattern, by_name = _matcher(directory)
    seen: dict[str, None] = {}
    for text in texts:
        for match in pattern.finditer(text or ""):
            seen.setdefault(by_name[match.group(1)], None)
    return list(seen)
