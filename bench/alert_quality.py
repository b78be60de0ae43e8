"""Alert quality on a replayed week: surges detected, detection delay, false alerts, per detector.

Real items from `../shared/data` (the sentiment posts with their labelled sentiment, the topic
posts with their labelled topic; the other instruction comes from the active model, else the
base encoder zero-shot) get timestamps spread over a simulated week with a daily cycle (twice
the rate 13:00-21:00 UTC). Injected at known times:
- ticker surges: 40 negative items (real bearish posts) about one ticker within 30 minutes;
- topic shifts: for two hours, a topic's negative share doubles (non-negative items of that
  topic relabelled negative, volume unchanged).
The scan then runs every `--step` minutes over the week, exactly as the scheduler would, with
the shipped rules' settings and each detector in turn. An alert counts as a detection when it
fires on the surge's key between the surge's start and one hour after its end; every other
alert fired by that variant is counted as false (the data may hold real anomalies of its own:
those count as false here).

Run with `make bench-alerts` or `python bench/alert_quality.py`. Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from alerts.detectors import DETECTORS  # noqa: E402
from alerts.rules import Rule, builtin_rules  # noqa: E402
from alerts.scan import scan  # noqa: E402
from connectors.db.engine import make_engine  # noqa: E402
from connectors.db.migrate import upgrade  # noqa: E402
from connectors.db.schema import Alert  # noqa: E402
from connectors.db.writer import ArticleRow, PredictionRow, write_batch  # noqa: E402
from connectors.news_item import extract_tickers  # noqa: E402
from models import instruction_store  # noqa: E402
from models.encoder import configure_cpu_threads  # noqa: E402
from models.executor import ExecutorOptions  # noqa: E402
from models.instructions import InstructionSet  # noqa: E402
from models.recipes import TFN_TOPICS  # noqa: E402
from models.registry import ModelRegistry, base_executor  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402

WEEK_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
SENTIMENT = {"0": "negative", "1": "positive", "2": "neutral"}
# Each detector runs with the shipped rule's thresholds (all scores are robust standard deviations).
TICKER_RULE, TOPIC_RULE = "ticker-negative-surge", "topic-negative-shift"


@dataclass
class Post:
    text: str
    sentiment: str
    topic: str
    at: datetime
    tickers: list[str]


@dataclass(frozen=True)
class Surge:
    kind: str  # ticker or topic
    key: str
    start: datetime
    end: datetime


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _timestamps(n: int, rng: random.Random) -> list[datetime]:
    """n times over the week, twice as dense 13:00-21:00 UTC (a trading day's news cycle)."""
    times = []
    while len(times) < n:
        offset = rng.uniform(0, 7 * 86400)
        hour = (offset % 86400) / 3600
        if rng.random() < (1.0 if 13 <= hour < 21 else 0.5):
            times.append(WEEK_START + timedelta(seconds=offset))
    return sorted(times)


def load_posts(data_dir: Path, rng: random.Random, settings: object) -> list[Post]:
    sentiment_rows = _read(data_dir / "tfns_sentiment" / "train.csv")
    topic_rows = _read(data_dir / "tfn_topic" / "train.csv")
    texts = [r["text"] for r in sentiment_rows] + [r["text"] for r in topic_rows]
    predicted = classify(texts, settings)
    posts = []
    for i, row in enumerate(sentiment_rows):
        posts.append(Post(row["text"], SENTIMENT[row["label"]], predicted[i]["topic"], WEEK_START, []))
    for j, row in enumerate(topic_rows):
        i = len(sentiment_rows) + j
        posts.append(
            Post(row["text"], predicted[i]["sentiment"], TFN_TOPICS[int(row["label"])], WEEK_START, [])
        )
    rng.shuffle(posts)
    for post, at in zip(posts, _timestamps(len(posts), rng), strict=True):
        post.at = at
        post.tickers = extract_tickers(post.text)
    return posts


def classify(texts: list[str], settings: object) -> list[dict[str, str]]:
    from pipeline.settings import Settings

    assert isinstance(settings, Settings)
    engine = make_engine(settings.database_url)
    instructions = InstructionSet.of(
        [i for i in instruction_store.current(engine).instructions if i.name in {"sentiment", "topic"}]
    )
    configure_cpu_threads(settings.inference_cpu_threads)
    options = ExecutorOptions(device="auto", precision="auto")
    registry = ModelRegistry(settings.models_dir, engine)
    version = registry.active_version()
    executor = (
        registry.load(version, options)
        if version
        else base_executor(settings.encoder, options, settings.cache_dir)
    )
    cache = settings.cache_dir / "bench" / f"alert-quality-{executor.version}-{len(texts)}.json"
    if cache.exists():  # the same model on the same data: reruns skip the 3 CPU minutes
        cached: list[dict[str, str]] = json.loads(cache.read_text())
        return cached
    started = time.perf_counter()
    out = []
    for start in range(0, len(texts), 2048):
        for result in executor.classify(texts[start : start + 2048], instructions):
            out.append({name: output.label for name, output in result.items()})
    print(f"classified {len(texts)} posts with {executor.version} in {time.perf_counter() - started:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def inject(posts: list[Post], rng: random.Random) -> tuple[list[Post], list[Surge]]:
    bearish = [(p.text, p.topic) for p in posts if p.sentiment == "negative"]
    surges = []
    extra = []
    for day, hour, ticker in ((1, 10.0, "TSLA"), (3, 15.5, "UBER"), (5, 3.0, "ACME")):
        start = WEEK_START + timedelta(days=day, hours=hour)
        for _ in range(40):
            at = start + timedelta(seconds=rng.uniform(0, 1800))
            text, topic = rng.choice(bearish)
            extra.append(Post(text, "negative", topic, at, [ticker]))
        surges.append(Surge("ticker", ticker, start, start + timedelta(minutes=30)))
    topic_counts = Counter(p.topic for p in posts)
    for (day, hour), (topic, _) in zip(((2, 14.0), (4, 9.0)), topic_counts.most_common(2), strict=True):
        start = WEEK_START + timedelta(days=day, hours=hour)
        end = start + timedelta(hours=2)
        window = [p for p in posts if p.topic == topic and start <= p.at < end]
        before = [p for p in posts if p.topic == topic and p.at < start]
        share = sum(p.sentiment == "negative" for p in before) / max(1, len(before))
        flip = round(share * len(window))  # doubles the share, volume unchanged
        candidates = [p for p in window if p.sentiment != "negative"]
        for post in rng.sample(candidates, min(flip, len(candidates))):
            post.sentiment = "negative"
        print(
            f"topic shift: {topic!r} {start:%a %H:%M}-{end:%H:%M}, {len(window)} items, "
            f"share {share:.2f} -> ~{2 * share:.2f}"
        )
        surges.append(Surge("topic", topic, start, end))
    return posts + extra, surges


def store(engine: object, posts: list[Post]) -> None:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    rows = []
    for i, post in enumerate(posts):
        probs = {"negative": 0.05, "neutral": 0.05, "positive": 0.05}
        probs[post.sentiment] = 0.9
        rows.append(
            ArticleRow(
                id=f"bench-{i:06d}",
                source="bench",
                url=None,
                title=post.text[:2000],
                body="",
                published_at=post.at,
                fetched_at=post.at,
                lang="en",
                tickers=post.tickers,
                predictions=[
                    PredictionRow("sentiment", post.sentiment, 0.9, probs, "bench"),
                    PredictionRow("topic", post.topic, 0.9, {post.topic: 0.9}, "bench"),
                ],
            )
        )
    for start in range(0, len(rows), 1000):
        write_batch(engine, rows[start : start + 1000], [])


def variants(thresholds: list[float] | None = None) -> list[Rule]:
    """The two shipped surge rules with each detector; `thresholds` adds fire_above variants."""
    shipped = {rule.name: rule for rule in builtin_rules()}
    out = []
    for base in (shipped[TICKER_RULE], shipped[TOPIC_RULE]):
        for detector in DETECTORS:
            out.append(replace(base, name=f"{base.name}.{detector}", detector=detector))
            for fire in thresholds or []:
                if fire != base.fire_above:
                    name = f"{base.name}.{detector}.at{fire:g}"
                    resolve = min(base.resolve_below, fire)
                    out.append(
                        replace(base, name=name, detector=detector, fire_above=fire, resolve_below=resolve)
                    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step", type=float, default=5.0, help="minutes between scans")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", help="SQLite file to keep (default: a temporary one)")
    parser.add_argument("--thresholds", help="also try these fire_above values, e.g. 3,4,6")
    args = parser.parse_args()
    settings = load_settings()
    rng = random.Random(args.seed)
    posts, surges = inject(load_posts(settings.data_dir, rng, settings), rng)
    path = Path(args.db) if args.db else Path(tempfile.mkdtemp()) / "alerts-bench.db"
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    store(engine, posts)
    rules = variants([float(t) for t in args.thresholds.split(",")] if args.thresholds else None)
    print(f"{len(posts)} items over a simulated week in {path}; scanning every {args.step:g} min")
    started = time.perf_counter()
    now = WEEK_START + timedelta(days=1)  # a day of history before the first scan
    scans = 0
    while now <= WEEK_START + timedelta(days=7):
        scan(engine, rules, set(), now)
        now += timedelta(minutes=args.step)
        scans += 1
    elapsed = time.perf_counter() - started
    print(
        f"{scans} scans of {len(rules)} rules in {elapsed:.0f} s ({1000 * elapsed / scans:.0f} ms per scan)"
    )
    with Session(engine) as session:
        fired = list(session.scalars(select(Alert).where(Alert.fired_at.is_not(None))))
    print()
    print(
        f"{'rule / detector':36} {'detected':>9} {'delays (min)':>18} "
        f"{'side effects':>13} {'false alerts':>13}"
    )
    for rule in rules:
        kind = "ticker" if rule.name.startswith(TICKER_RULE) else "topic"
        mine = [a for a in fired if a.rule == rule.name]
        expected = [s for s in surges if s.kind == kind]
        delays = []
        matched: set[int] = set()
        for surge in expected:
            hits = [
                a
                for a in mine
                if a.series_key == surge.key
                and a.fired_at is not None
                and surge.start <= a.fired_at <= surge.end + timedelta(hours=1)
            ]
            if hits:
                first = min(hits, key=lambda a: a.fired_at or surge.start)
                delays.append((first.fired_at - surge.start).total_seconds() / 60 if first.fired_at else 0)
                matched.update(a.id for a in hits)

        # An alert on another key while an injected surge runs (or within an hour after it) is
        # the surge seen from another series (its negative items raise their topic's share):
        # counted apart, not as false.
        def during_injection(alert: Alert) -> bool:
            return any(
                alert.fired_at is not None and s.start <= alert.fired_at <= s.end + timedelta(hours=1)
                for s in surges
            )

        side = [a for a in mine if a.id not in matched and during_injection(a)]
        false = [a for a in mine if a.id not in matched and not during_injection(a)]
        delay_text = ", ".join(f"{d:.0f}" for d in delays) or "-"
        print(
            f"{rule.name:36} {len(delays):>4}/{len(expected):<4} {delay_text:>18} "
            f"{len(side):>13} {len(false):>13}"
        )
        for alert in false[:5]:
            print(f"    false: {alert.series_key} at {alert.fired_at:%a %H:%M} peak {alert.peak_score:.1f}")


if __name__ == "__main__":
    main()
