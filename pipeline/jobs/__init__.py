"""Scheduled jobs: the APScheduler process, the retrain job and the alert scan-and-deliver job.

May import `pipeline.settings`, `pipeline.telemetry` and `pipeline.service`; never the CLI or the web layer.
"""
