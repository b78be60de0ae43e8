"""Trigger DDL shared by the tables that the database keeps derived from others (rollups.py,
rollup_items.py): one place that spells PostgreSQL's statement-level form and the drops."""

from __future__ import annotations


def statement_trigger_sql(name: str, table: str, event: str, body: str, transitions: str) -> list[str]:
    """A PL/pgSQL function running `body` once per statement, and its AFTER trigger on `table`
    with the transition tables `transitions` names (the statement's rows, read as a set)."""
    return [
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n    {body}\n    RETURN NULL;\nEND $$",
        f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transitions} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
    ]


def drop_triggers_sql(dialect: str, names: list[tuple[str, str]]) -> list[str]:
    """Drop the (table, trigger name) pairs, and on PostgreSQL the functions of the same names."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, name in names] + [
            f"DROP FUNCTION IF EXISTS {name}()" for _, name in names
        ]
    return [f"DROP TRIGGER IF EXISTS {name}" for _, name in names]
