"""Re-classify recent history with the model that runs now, so that series compare like with like.

After a promotion, articles stored before it carry the old model's labels and new ones the new
model's; a negative share can step on the day of the swap and an alert baseline would read the
step as news. The alert scan already judges only points one model labelled entirely
(alerts/series.py); this job makes those points cover the baselines again by answering the
recent articles with the live model, newest first (the windows nearest now are judged first).

- Resumable by construction: an article is due while any of its current answers is from another
  version; answers are written with `ON CONFLICT DO NOTHING` in one transaction per batch, so a
  run killed half-way loses at most its unwritten batch and the next run continues from there.
- Throttled: small batches, at most `items_per_s`, and a time budget per scheduled run, so the
  workers (live traffic) keep the CPU and the database; the scheduler runs it again later.
- An article that fails inference is skipped for the rest of the run (logged), never retried in
  a tight loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Engine, bindparam, text

from alerts.rules import Rule
from connectors.db.schema import UtcDateTime, utcnow
from connectors.db.writer import write_batch
from connectors.entities import EntityRecogniser, entities_of
from connectors.news_item import NewsItem
from models.classifier import Classifier
from models.instructions import InstructionSet
from pipeline.service.batch import Stored, article_row

log = logging.getLogger(__name__)


@dataclass
class BackfillReport:
    version: str
    since: datetime
    due_at_start: int = 0
    classified: int = 0
    failed: int = 0
    seconds: float = 0.0
    finished: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "since": self.since.isoformat(),
            "due_at_start": self.due_at_start,
            "classified": self.classified,
            "failed": self.failed,
            "seconds": round(self.seconds, 2),
            "finished": self.finished,
        }


_DUE = """
FROM articles a
WHERE a.published_at > :since
  AND EXISTS (
      SELECT 1 FROM current_predictions c WHERE c.article_id = a.id AND c.model_version <> :version
  )"""
_ITEM_FIELDS = ("id", "source", "url", "title", "body", "published_at", "fetched_at", "lang", "tickers")


def backfill_horizon_s(rules: Iterable[Rule]) -> float:
    """How far back the scan compares: the longest judged window plus its baseline (1 day when
    no rule is enabled)."""
    return max((r.bucket_s + r.baseline_s for r in rules if r.enabled), default=86400.0)


def count_due(engine: Engine, since: datetime, version: str) -> int:
    """Articles published after `since` whose current answers are not all from `version`."""
    statement = text(f"SELECT COUNT(*) {_DUE}").bindparams(bindparam("since", type_=UtcDateTime()))
    with engine.connect() as conn:
        return int(conn.execute(statement, {"since": since, "version": version}).scalar_one())


def _due_batch(
    engine: Engine, since: datetime, version: str, limit: int, before: tuple[datetime, str] | None
) -> list[NewsItem]:
    """The next `limit` due articles, newest first, after the keyset cursor `before`, as items
    (with the entities judged before, if any) ready to be answered again."""
    after = "AND (a.published_at < :cursor_at OR (a.published_at = :cursor_at AND a.id < :cursor_id))"
    statement = (
        text(
            "SELECT a.id, a.source, a.url, a.title, a.body, a.published_at, a.fetched_at, a.lang, "
            f"a.tickers {_DUE} {after if before else ''} ORDER BY a.published_at DESC, a.id DESC LIMIT :limit"
        )
        .bindparams(bindparam("since", type_=UtcDateTime()))
        .columns(published_at=UtcDateTime(), fetched_at=UtcDateTime(), tickers=JSON())
    )
    params: dict[str, Any] = {"since": since, "version": version, "limit": limit}
    if before:
        statement = statement.bindparams(bindparam("cursor_at", type_=UtcDateTime()))
        params |= {"cursor_at": before[0], "cursor_id": before[1]}
    with engine.connect() as conn:
        rows = list(conn.execute(statement, params).mappings())
        given: dict[str, list[str]] = {}
        if rows:
            named = text(
                "SELECT DISTINCT article_id, entity FROM current_entity_predictions WHERE article_id IN :ids"
            ).bindparams(bindparam("ids", expanding=True))
            for article_id, entity in conn.execute(named, {"ids": [row["id"] for row in rows]}):
                given.setdefault(str(article_id), []).append(str(entity))
    # Rows the worker stored from validated items: no second validation. The entities judged
    # before are judged again (an item's own list is stored nowhere else); an article without
    # any is searched by the recogniser, as the worker did.
    return [
        NewsItem.model_construct(
            **{k: row[k] for k in _ITEM_FIELDS},
            entities=sorted(given[row["id"]]) if row["id"] in given else None,
        )
        for row in rows
    ]


def run_backfill(
    engine: Engine,
    classifier: Classifier,
    instructions: InstructionSet,
    recogniser: EntityRecogniser,
    since_s: float,
    *,
    batch_size: int = 32,
    items_per_s: float = 0.0,
    time_budget_s: float | None = None,
    progress: Callable[[BackfillReport], None] | None = None,
    now: datetime | None = None,
    due_at_start: int | None = None,
) -> BackfillReport:
    """Answer every due article published in the last `since_s` seconds with `classifier`.
    `items_per_s` 0 means unthrottled (the on-demand command); the job passes a rate and a time
    budget and is run again until `finished`. `due_at_start` is a count the caller already made
    for this `version` and `now`; None counts."""
    since = (now or utcnow()) - timedelta(seconds=since_s)
    version = classifier.version
    if due_at_start is None:
        due_at_start = count_due(engine, since, version)
    report = BackfillReport(version=version, since=since, due_at_start=due_at_start)
    started = time.perf_counter()
    cursor: tuple[datetime, str] | None = None
    while True:
        items = _due_batch(engine, since, version, batch_size, cursor)
        if not items:
            report.finished = True
            break
        cursor = (items[-1].published_at, items[-1].id)
        began = time.perf_counter()
        found = [entities_of(recogniser, item.text, item.tickers, item.entities) for item in items]
        try:
            answers = classifier.classify_items(
                [item.text for item in items], instructions, [[e.text for e in f] for f in found]
            )
        except Exception as exc:
            log.error("backfill batch skipped", extra={"event": "backfill_failed", "error": repr(exc)})
            report.failed += len(items)
            continue
        rows = [
            article_row(Stored(item, answer, f), version)
            for item, answer, f in zip(items, answers, found, strict=True)
        ]
        write_batch(engine, rows)
        report.classified += len(items)
        report.seconds = time.perf_counter() - started
        if progress is not None:
            progress(report)
        if items_per_s > 0:
            # Pace to the rate: the workers' batches meet an idle CPU between ours.
            time.sleep(max(0.0, len(items) / items_per_s - (time.perf_counter() - began)))
        # Checked after a batch: every run makes progress, however small its budget.
        if time_budget_s is not None and time.perf_counter() - started >= time_budget_s:
            break
    report.seconds = time.perf_counter() - started
    log.info("backfill run", extra={"event": "backfill", **report.as_dict()})
    return report
