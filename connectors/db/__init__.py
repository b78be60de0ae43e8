"""The SQL store: schema (typed ORM), migrations, analyst views, idempotent batch writers, job locks.

Part of `connectors`: imports nothing from `models`, `alerts` or `pipeline`.
"""
