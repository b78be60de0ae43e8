"""Each article's current answer per instruction, kept by the database itself.

The analyst views and the alert series read an article's *latest* prediction per instruction
(per entity and instruction for entity-scoped answers): the newest by `created_at`, then `id`.
Ranking every prediction ever stored on each query made every view cost the whole history's
size, and on PostgreSQL the ranked CTE of the series query, estimated at a few rows, was scanned
once per recent article: quadratic in a window's volume (an alert scan over a month of one
newswire took 13 s, and did not finish in 600 s at ten of them).

`current_predictions` and `current_entity_predictions` hold that latest row, keyed by what it is
the latest *of*, maintained by triggers on the raw tables, so every writer (the worker's batch
transaction, a backfill, a hand-written INSERT) keeps them exact in the same transaction as the
raw row, redelivery included (a redelivered row is not inserted, so no trigger fires):

- after INSERT: upsert the new row where it is newer than the current one (an older model's
  row written late, e.g. by a rollback that re-classifies, does not replace a newer answer,
  exactly as the ranking would not have chosen it);
- after DELETE: where the deleted row was current, the newest remaining row takes its place
  (retention deletes superseded rows only, so this normally finds nothing to do);
- after UPDATE (rows are written once; a hand correction, a test ageing rows): the keys it
  touched are recomputed.

PostgreSQL runs one statement-level trigger per INSERT or DELETE over its transition table (the
worker's batch is one multi-row INSERT); SQLite has only row-level triggers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CurrentTable:
    raw: str  # the table every answer is stored in
    current: str  # the table of latest answers
    pointer: str  # the current table's column holding the raw row's id
    key: tuple[str, ...]  # what a row is the latest of
    values: tuple[str, ...]  # copied from the raw row

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.key, self.pointer, *self.values)


PREDICTIONS = CurrentTable(
    raw="predictions",
    current="current_predictions",
    pointer="prediction_id",
    key=("article_id", "instruction"),
    values=("label", "score", "distribution", "zero_shot", "model_version", "created_at"),
)
ENTITY_PREDICTIONS = CurrentTable(
    raw="entity_predictions",
    current="current_entity_predictions",
    pointer="entity_prediction_id",
    key=("article_id", "entity", "instruction"),
    values=(
        "kind",
        "ticker",
        "found",
        "label",
        "score",
        "distribution",
        "zero_shot",
        "model_version",
        "created_at",
    ),
)
TABLES = (PREDICTIONS, ENTITY_PREDICTIONS)


def _source_columns(table: CurrentTable, alias: str) -> str:
    """The raw row's columns in the current table's column order (its `id` is the pointer)."""
    return ", ".join(f"{alias}.id AS {c}" if c == table.pointer else f"{alias}.{c}" for c in table.columns)


def _upsert_tail(table: CurrentTable, target: str) -> str:
    """ON CONFLICT: replace only with a newer row, as the ranking (created_at, then id) would."""
    updated = ", ".join(f"{c} = excluded.{c}" for c in (table.pointer, *table.values))
    return (
        f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {updated} "
        f"WHERE (excluded.created_at, excluded.{table.pointer}) > "
        f"({target}.created_at, {target}.{table.pointer})"
    )


def ranked_latest_sql(table: CurrentTable, where: str = "") -> str:
    """The latest raw rows by ranking, in the current table's columns: what the current table must
    equal (the tests' recount) and how it is filled for rows written before it existed."""
    key = ", ".join(f"r.{c}" for c in table.key)
    return f"""
SELECT {", ".join(table.columns)} FROM (
    SELECT {_source_columns(table, "r")} , ROW_NUMBER() OVER (
        PARTITION BY {key} ORDER BY r.created_at DESC, r.id DESC
    ) AS rn
    FROM {table.raw} r {where}
) ranked WHERE rn = 1"""


def fill_sql(table: CurrentTable) -> str:
    return f"INSERT INTO {table.current} ({', '.join(table.columns)}) {ranked_latest_sql(table)}"


def _names(table: CurrentTable) -> tuple[str, str, str]:
    return (
        f"trg_{table.raw}_current_insert",
        f"trg_{table.raw}_current_delete",
        f"trg_{table.raw}_current_update",
    )


def _postgresql_triggers(table: CurrentTable) -> list[str]:
    insert_name, delete_name, update_name = _names(table)
    columns = ", ".join(table.columns)
    key = ", ".join(table.key)
    raw_key = ", ".join(f"r.{k}" for k in table.key)
    latest_first = f"{raw_key}, r.created_at DESC, r.id DESC"

    def latest_of(keys: str, only_missing: bool) -> str:
        """INSERT the newest raw row of each key in `keys` (a SELECT of key columns)."""
        missing = (
            f"AND NOT EXISTS (SELECT 1 FROM {table.current} c "
            f"WHERE {' AND '.join(f'c.{k} = r.{k}' for k in table.key)})"
            if only_missing
            else ""
        )
        return f"""
    INSERT INTO {table.current} ({columns})
    SELECT DISTINCT ON ({raw_key}) {_source_columns(table, "r")}
    FROM {table.raw} r WHERE ({raw_key}) IN ({keys}) {missing}
    ORDER BY {latest_first};"""

    def function(name: str, body: str) -> str:
        return (
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN{body}\n    RETURN NULL;\nEND $$"
        )

    def trigger(name: str, event: str, transitions: str) -> str:
        return (
            f"CREATE TRIGGER {name} AFTER {event} ON {table.raw} REFERENCING {transitions} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )

    # DISTINCT ON: one INSERT ... ON CONFLICT DO UPDATE may not touch a row twice, and one
    # statement can hold two model versions' answers for a key.
    on_insert = f"""
    INSERT INTO {table.current} AS t ({columns})
    SELECT DISTINCT ON ({raw_key}) {_source_columns(table, "r")}
    FROM new_rows r ORDER BY {latest_first}
    {_upsert_tail(table, "t")};"""
    on_delete = f"""
    DELETE FROM {table.current} c USING old_rows o
    WHERE {" AND ".join(f"c.{k} = o.{k}" for k in table.key)} AND c.{table.pointer} = o.id;""" + latest_of(
        f"SELECT {key} FROM old_rows", only_missing=True
    )
    # Rows are written once; an UPDATE (a correction by hand, a test ageing rows) may change
    # what is latest for its old and new keys: both are recomputed.
    touched = f"SELECT {key} FROM old_rows UNION SELECT {key} FROM new_rows"
    on_update = f"""
    DELETE FROM {table.current} WHERE ({key}) IN ({touched});""" + latest_of(touched, only_missing=False)
    return [
        function(insert_name, on_insert),
        trigger(insert_name, "INSERT", "NEW TABLE AS new_rows"),
        function(delete_name, on_delete),
        trigger(delete_name, "DELETE", "OLD TABLE AS old_rows"),
        function(update_name, on_update),
        trigger(update_name, "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ]


def _sqlite_triggers(table: CurrentTable) -> list[str]:
    insert_name, delete_name, update_name = _names(table)
    columns = ", ".join(table.columns)
    new_values = ", ".join(f"NEW.{'id' if c == table.pointer else c}" for c in table.columns)

    def latest_of(row: str) -> str:
        """INSERT the newest raw row for `row`'s key (OLD or NEW) where no current row is left.
        The article test keeps a cascade from the article (which deletes its current rows too)
        from re-inserting a row whose article is going away: a foreign-key error."""
        return f"""
    INSERT INTO {table.current} ({columns})
    SELECT {_source_columns(table, "r")} FROM {table.raw} r
    WHERE {" AND ".join(f"r.{k} = {row}.{k}" for k in table.key)}
      AND EXISTS (SELECT 1 FROM articles a WHERE a.id = {row}.article_id)
      AND NOT EXISTS (
          SELECT 1 FROM {table.current} c WHERE {" AND ".join(f"c.{k} = {row}.{k}" for k in table.key)}
      )
    ORDER BY r.created_at DESC, r.id DESC LIMIT 1;"""

    def forget(row: str, only_pointer: bool) -> str:
        pointer = f" AND {table.pointer} = {row}.id" if only_pointer else ""
        return f"""
    DELETE FROM {table.current} WHERE {" AND ".join(f"{k} = {row}.{k}" for k in table.key)}{pointer};"""

    return [
        f"""CREATE TRIGGER {insert_name} AFTER INSERT ON {table.raw} BEGIN
    INSERT INTO {table.current} ({columns}) VALUES ({new_values})
    {_upsert_tail(table, table.current)};
END""",
        f"CREATE TRIGGER {delete_name} AFTER DELETE ON {table.raw} BEGIN"
        + forget("OLD", only_pointer=True)
        + latest_of("OLD")
        + "\nEND",
        f"CREATE TRIGGER {update_name} AFTER UPDATE ON {table.raw} BEGIN"
        + forget("OLD", only_pointer=False)
        + forget("NEW", only_pointer=False)
        + latest_of("OLD")
        + latest_of("NEW")
        + "\nEND",
    ]


def create_triggers_sql(dialect: str, table: CurrentTable) -> list[str]:
    if dialect == "postgresql":
        return _postgresql_triggers(table)
    if dialect == "sqlite":
        return _sqlite_triggers(table)
    raise RuntimeError(f"unsupported database dialect {dialect!r}: use PostgreSQL or SQLite")


def drop_triggers_sql(dialect: str, table: CurrentTable) -> list[str]:
    names = _names(table)
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {n} ON {table.raw}" for n in names] + [
            f"DROP FUNCTION IF EXISTS {n}()" for n in names
        ]
    return [f"DROP TRIGGER IF EXISTS {n}" for n in names]
