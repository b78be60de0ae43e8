"""Entity-level sentiment end to end: a trained entity head on held-out SEntFiN headlines, the
worker's batch path storing entity rows idempotently, `finsent classify` with and without
entities, and per-ticker alerts that judge the sentiment toward the ticker."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from alerts.rules import rule_from_spec
from alerts.scan import scan
from connectors.db.engine import make_engine
from connectors.db.migrate import upgrade
from connectors.db.schema import Alert, EntityPrediction, Prediction
from connectors.db.writer import ArticleRow, EntityPredictionRow, PredictionRow, write_batch
from connectors.entities import EntityRecogniser, load_directory
from connectors.news_item import make_item
from models.encoder import load_encoder
from models.executor import InstructionExecutor
from models.instructions import InstructionSet, builtin
from models.recipes import sentfin_entities, sentfin_headlines, sentfin_single_entity
from models.registry import ModelRegistry
from models.training import TrainConfig, Trainer
from pipeline.service.batch import BatchProcessor, Limits, RawRecord, classified_message
from tests.conftest import FINSENT, engine_for

TRAIN_ENTITIES = 5000  # of 9,802 training entities: enough to beat copying, quick on 2 cores


pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def trained(data_dir_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(database URL, version): a heads-only model with an entity head, registered and active."""
    instructions = InstructionSet.of([builtin().get("sentiment")])
    entities = sentfin_entities(data_dir_module, instructions)
    random.Random(3).shuffle(entities)
    examples = entities[:TRAIN_ENTITIES] + sentfin_single_entity(data_dir_module, instructions)[:1500]
    tokenizer, encoder = load_encoder("minilm")
    config = TrainConfig(mode="heads", max_length=64, heads_epochs=40, progress=False)
    result = Trainer(encoder, tokenizer, instructions, config).fit(examples)
    assert result.metrics["sentiment@entity"]["n"] > 0  # the trainer's own validation of the head
    home = tmp_path_factory.mktemp("entity-home")
    url = f"sqlite:///{home / 'finsent.db'}"
    upgrade(url)
    engine = make_engine(url)
    registry = ModelRegistry(home / "models", engine)
    version = registry.register(result, tokenizer, instructions, "minilm")
    registry.activate(version)
    engine.dispose()
    yield url, version


def _executor(url: str, version: str) -> InstructionExecutor:
    engine = make_engine(url)
    try:
        return ModelRegistry(Path(url.removeprefix("sqlite:///")).parent / "models", engine).load(version)
    finally:
        engine.dispose()


def test_conflicting_headlines_get_conflicting_entity_labels(
    trained: tuple[str, str], data_dir_module: Path
) -> None:
    """On held-out headlines whose entities disagree (never trained on: the recipes skip the
    validation side of the split), the entity head beats copying the article's label to every
    entity, and gives conflicting labels where the annotators did."""
    executor = _executor(*trained)
    held_out = [h for h in sentfin_headlines(data_dir_module, validation=True) if h.disagree]
    assert len(held_out) > 100
    train_titles = {e.text for e in sentfin_entities(data_dir_module, builtin())}
    assert not train_titles & {h.title for h in held_out}
    answers = executor.classify_items(
        [h.title for h in held_out], builtin(), [[n for n, _ in h.entities] for h in held_out]
    )
    right = copied = total = conflicting = 0
    for headline, answer in zip(held_out, answers, strict=True):
        labels = {name: answer.entities[name].outputs["sentiment"].label for name, _ in headline.entities}
        assert all(answer.entities[name].found for name, _ in headline.entities if name in headline.title)
        conflicting += len(set(labels.values())) > 1
        for name, truth in headline.entities:
            total += 1
            right += labels[name] == truth
            copied += answer.article["sentiment"].label == truth
    assert right / total > copied / total + 0.05, (right, copied, total)
    assert conflicting / len(held_out) > 0.25, conflicting


def test_batch_stores_entity_rows_once_and_publishes_them(
    trained: tuple[str, str], data_dir_module: Path, pg_engine: Engine
) -> None:
    executor = _executor(*trained)
    recogniser = EntityRecogniser(load_directory(data_dir_module / "companies" / "sec_company_tickers.json"))
    mixed = make_item(source="t", title="Tesla beats delivery estimates; Ford cuts full-year guidance")
    given = make_item(source="t", title="SpiceJet to raise funds from promoters")
    payload = {**json.loads(given.to_json_bytes()), "entities": ["SpiceJet", "Mid caps"]}
    records = [
        RawRecord("news.raw", 0, 1, b"k1", mixed.to_json_bytes()),
        RawRecord("news.raw", 0, 2, b"k2", json.dumps(payload).encode()),
        RawRecord("news.raw", 0, 3, b"k3", json.dumps({**payload, "entities": []}).encode()),
    ]
    processor = BatchProcessor(
        pg_engine, lambda: executor, builtin, Limits(2000, 20000), recogniser=recogniser
    )
    first = processor.process(records)
    assert [d.code for d in first.dead] == ["invalid_entities"]
    assert first.write is not None and first.write.entity_predictions_inserted == 4
    again = processor.process(records)  # redelivered after a crash before the offset commit
    assert again.write is not None and again.write.entity_predictions_inserted == 0
    with Session(pg_engine) as session:
        rows = session.execute(
            select(
                EntityPrediction.entity,
                EntityPrediction.kind,
                EntityPrediction.ticker,
                EntityPrediction.found,
            ).order_by(EntityPrediction.entity)
        ).all()
        tickers = session.execute(text("SELECT ticker FROM article_tickers ORDER BY ticker")).scalars().all()
    assert [tuple(r) for r in rows] == [
        ("Ford", "company", "F", True),
        ("Mid caps", "other", None, False),
        ("SpiceJet", "other", None, True),
        ("Tesla", "company", "TSLA", True),
    ]
    assert tickers == ["F", "TSLA"]  # recognised by name, counted for their tickers
    message = classified_message(first.stored[1], first.model_version)
    assert set(message["entities"]) == {"SpiceJet", "Mid caps"}  # type: ignore[arg-type]
    spicejet = message["entities"]["SpiceJet"]  # type: ignore[index]
    assert spicejet["found"] is True and spicejet["sentiment"]["label"] in {"negative", "neutral", "positive"}


def test_classify_with_and_without_entities(trained: tuple[str, str], tmp_path: Path) -> None:
    url, version = trained
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(
        json.dumps(
            {"id": "a", "text": "SpiceJet shares slump as losses widen", "entities": ["SpiceJet", "Mid caps"]}
        )
        + "\n"
        + json.dumps({"id": "b", "text": "Tesla beats estimates; Ford cuts guidance"})
        + "\n"
    )
    env = {
        **os.environ,
        "FINSENT_DATABASE_URL": url,
        "FINSENT_HOME": str(Path(url.removeprefix("sqlite:///")).parent),
    }
    output = tmp_path / "out.jsonl"
    done = subprocess.run(
        [FINSENT, "classify", "--input", str(inputs), "--output", str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert version in done.stderr
    first, second = [json.loads(line) for line in output.read_text().splitlines()]
    assert list(first["entities"]) == ["SpiceJet", "Mid caps"]  # exactly the strings given
    for name, found in (("SpiceJet", True), ("Mid caps", False)):
        answer = first["entities"][name]
        assert answer["found"] is found
        assert set(answer["sentiment"]) == {"label", "score", "distribution"}
        assert answer["sentiment"]["score"] == max(answer["sentiment"]["distribution"].values())
    assert first["sentiment"]["label"] in {"negative", "neutral", "positive"}  # the article's, too
    assert {k: (v["kind"], v["ticker"]) for k, v in second["entities"].items()} == {
        "Tesla": ("company", "TSLA"),
        "Ford": ("company", "F"),
    }
    assert all("sentiment" in v for v in second["entities"].values())
    # A bad entity list is a clear error naming the line; nothing is written.
    inputs.write_text(json.dumps({"id": "c", "text": "x", "entities": []}) + "\n")
    bad = subprocess.run(
        [FINSENT, "classify", "--input", str(inputs), "--output", str(tmp_path / "bad.jsonl")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert bad.returncode != 0 and "in.jsonl:1: entities is empty" in bad.stderr
    assert not (tmp_path / "bad.jsonl").exists()


T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def _mixed(i: int, at: datetime, entity_level: bool) -> ArticleRow:
    """A headline good for TSLA and bad for F; the article as a whole reads negative."""

    def probs(label: str) -> dict[str, float]:
        return {k: 0.8 if k == label else 0.1 for k in ("negative", "neutral", "positive")}

    row = ArticleRow(
        id=f"mixed-{entity_level}-{i:05d}",
        source="t",
        url=None,
        title=f"Tesla beats estimates; Ford cuts guidance ({i})",
        body="",
        published_at=at,
        fetched_at=at,
        lang="en",
        tickers=["TSLA", "F"],
        predictions=[PredictionRow("sentiment", "negative", 0.8, probs("negative"), "v1")],
    )
    if entity_level:
        row.entity_predictions = [
            EntityPredictionRow(
                "Tesla", "company", "TSLA", True, "sentiment", "positive", 0.8, probs("positive"), "v1"
            ),
            EntityPredictionRow(
                "Ford", "company", "F", True, "sentiment", "negative", 0.8, probs("negative"), "v1"
            ),
        ]
    return row


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("entity_level", [True, False])
def test_ticker_alert_judges_the_sentiment_toward_the_ticker(
    request: pytest.FixtureRequest, kind: str, entity_level: bool
) -> None:
    """Quiet baseline news about both, then a burst of headlines good for Tesla and bad for Ford:
    the shipped ticker rule fires for F only. Without entity rows (the article's label for every
    ticker, as before entity scope) the same burst fires for TSLA too."""
    engine = engine_for(request, kind)
    quiet = [
        ArticleRow(
            id=f"quiet-{entity_level}-{t}-{b:04d}",
            source="t",
            url=None,
            title=f"{t} update {b}",
            body="",
            published_at=T0 + timedelta(minutes=20 * b + 3),
            fetched_at=T0,
            lang="en",
            tickers=[t],
            predictions=[
                PredictionRow(
                    "sentiment", "neutral", 0.8, {"negative": 0.1, "neutral": 0.8, "positive": 0.1}, "v1"
                )
            ],
        )
        for t in ("TSLA", "F")
        for b in range(72)
    ]
    burst_at = T0 + timedelta(hours=24)
    write_batch(
        engine, quiet + [_mixed(i, burst_at + timedelta(seconds=30 * i), entity_level) for i in range(12)]
    )
    rule = rule_from_spec(
        {
            "name": "ticker-negative-surge",
            "dimension": "ticker",
            "metric": "negative_volume",
            "bucket": "30m",
            "baseline": "24h",
            "detector": "robust_z",
            "fire_above": 5,
            "resolve_below": 2,
            "min_volume": 8,
            "keep_firing_for": "15m",
            "repeat_interval": "4h",
            "receivers": ["webhook"],
        }
    )
    scan(engine, [rule], {"webhook"}, burst_at + timedelta(minutes=10))
    with Session(engine) as session:
        fired = sorted(session.scalars(select(Alert.series_key).where(Alert.state == "firing")))
        stored = session.scalar(select(func.count()).select_from(EntityPrediction))
        assert session.scalar(select(func.count()).select_from(Prediction)) == 144 + 12
    assert stored == (24 if entity_level else 0)
    assert fired == (["F"] if entity_level else ["F", "TSLA"])
