"""Anomaly alerts: series read from SQL, detectors, rules, lifecycle and silences, outbox, notifiers.

May import `connectors` (the database); never `models` or `pipeline`.
"""
