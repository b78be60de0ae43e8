"""The streaming service: the Kafka worker, batch processing and writes, the label stream, DLQ replay.

May import `pipeline.settings` and `pipeline.telemetry`; never the CLI, the web layer or the jobs.
"""
