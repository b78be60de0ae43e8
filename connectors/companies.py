"""Company names → tickers at ingest, so an item about "Tesla" counts for TSLA without a cashtag.

The names are the project's alias list (`connectors/companies.yaml`), matched by the entity
recogniser (`connectors.entities`: case and punctuation folded, proper nouns only, longest name
first). The worker adds the SEC directory's names on top when it judges an item's entities.
"""

from __future__ import annotations

from functools import lru_cache

from connectors.entities import EntityRecogniser, cached_directory


@lru_cache(maxsize=1)
def _aliases() -> EntityRecogniser:
    return EntityRecogniser(cached_directory(None))


def company_tickers(*texts: str) -> list[str]:
    """Tickers of the companies named in the texts, in order of first mention, without repeats."""
    return list(dict.fromkeys(t for text in texts for t in _aliases().company_tickers(text or "")))
