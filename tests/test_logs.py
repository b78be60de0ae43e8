"""Log lines: the Kafka clients' repeated errors are folded, everything else passes."""

from __future__ import annotations

import logging

from pipeline.telemetry.logs import RepeatFilter


def _record(name: str, msg: str, created: float, *args: object) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)
    record.created = created
    return record


def test_a_client_error_repeated_every_100_ms_is_kept_once_per_window_with_the_count() -> None:
    repeats = RepeatFilter(window_s=10.0)
    template = "Unable connect to node with id %s: %s"
    kept = [
        record
        for i in range(400)  # 40 s of a broker that is away
        if repeats.filter(record := _record("aiokafka", template, 1000.0 + i / 10, 1, "refused"))
    ]
    assert [r.created for r in kept] == [1000.0, 1010.0, 1020.0, 1030.0]
    assert [getattr(r, "folded_repeats", 0) for r in kept] == [0, 99, 99, 99]
    # Another template, another library logger: not folded into the first.
    assert repeats.filter(_record("aiokafka.consumer.fetcher", "Failed fetch messages from %s", 1000.5, 1))
    # The project's own records are never folded.
    assert all(
        repeats.filter(_record("pipeline.service.worker", "batch stored", 1000.0 + i / 10)) for i in range(50)
    )
