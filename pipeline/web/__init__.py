"""The analysts' web side: the read-only dashboard (JSON API, page, vendored charts) and the PNG/PDF report.

May import `pipeline.settings` and `pipeline.telemetry`; never the service, the jobs or the CLI.
"""
