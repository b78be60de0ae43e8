"""The worker's batch step on a real SQLite database: retries, isolation of failing items."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from connectors.db.engine import make_engine
from connectors.db.writer import count_rows
from connectors.news_item import make_item
from models.classifier import Output, StandInClassifier
from models.instructions import InstructionSet, builtin
from pipeline.service.batch import BatchProcessor, Limits, RawRecord

LIMITS = Limits(max_title_chars=2000, max_body_chars=10_000)


def _records(titles: Sequence[str]) -> list[RawRecord]:
    return [
        RawRecord("news.raw", 0, offset, None, make_item(source="s", title=title).to_json_bytes())
        for offset, title in enumerate(titles)
    ]


def test_database_outage_at_instruction_lookup_is_waited_out(sqlite_url: str) -> None:
    calls = 0

    def flaky_instructions() -> InstructionSet:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise OperationalError("SELECT * FROM instructions", {}, ConnectionRefusedError("refused"))
        return builtin()

    engine = make_engine(sqlite_url)
    processor = BatchProcessor(engine, StandInClassifier, flaky_instructions, LIMITS, db_retry_max_s=0.1)
    outcome = processor.process(_records(["Fed holds rates", "Oil jumps"]))
    assert calls == 3
    assert len(outcome.stored) == 2 and not outcome.dead
    assert count_rows(engine) == {"articles": 2, "predictions": 4, "dlq_records": 0}


class _FailsOn(StandInClassifier):
    """Raises whenever a batch contains the poisoned text, like an OOM on one huge item would."""

    def classify(self, texts: Sequence[str], instructions: InstructionSet) -> list[dict[str, Output]]:
        if any("poison" in text for text in texts):
            raise RuntimeError("CUDA out of memory")
        return super().classify(texts, instructions)


def test_a_failing_item_is_isolated_and_dead_lettered_the_rest_stored(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    processor = BatchProcessor(engine, _FailsOn, builtin, LIMITS)
    titles = [f"headline {i}" for i in range(7)] + ["poison pill"] + [f"later {i}" for i in range(5)]
    outcome = processor.process(_records(titles))
    assert [d.code for d in outcome.dead] == ["model_error"]
    assert "out of memory" in outcome.dead[0].reason and outcome.dead[0].record.offset == 7
    assert count_rows(engine) == {"articles": 12, "predictions": 24, "dlq_records": 1}
