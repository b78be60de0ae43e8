"""The outside world: news sources, polite fetching, dedup, Kafka clients, the database schema and writers.

The bottom layer: imports nothing from `models`, `alerts` or `pipeline`.
"""
