"""Hand-written SQL of the ground: several statements in one round trip (for the hot paths,
rooms/inbound/statements.py and rooms/bot/statements.py).

Hand-written SQL lives only in modules named statements.py (ruff's S608 is allowed there and
nowhere else); each statement sits beside the ORM path it replaces, and a test compares them.

Through the ORM each statement is a round trip and a compilation; a message's webhook and its
turn were a dozen of each (docs/BENCHMARKS.md). PostgreSQL runs a query string of several
statements as one implicit transaction: committed, durably, before it answers, and rolled back
whole if any statement fails. Each statement takes its own snapshot when it starts, so one that
follows a lock reads what the lock protects. Django's psycopg cursor binds parameters on the
client, which is what lets such a string carry parameters.

Outside these paths the ORM stays: SQLite (the embedded run) and a caller's open transaction take
the ORM's way, which does the same work in more round trips.
"""

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Field, JSONField, Model


def one_round_trip_usable() -> bool:
    """PostgreSQL with client-side binding, and no transaction of the caller's open (the
    string's implicit transaction must be its own, or its commit would be the caller's)."""
    return (
        connection.vendor == "postgresql"
        and not connection.settings_dict["OPTIONS"].get("server_side_binding")
        and not connection.in_atomic_block
    )


def run_statements(statements: Sequence[str], params: Sequence[Any]) -> list[Any]:
    """Run the statements as one string and return, per statement, its rows when it returns
    rows and its row count otherwise."""
    results: list[Any] = []
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(statements), params)
        while True:
            results.append(cursor.fetchall() if cursor.description else cursor.rowcount)
            if not cursor.nextset():
                break
    if len(results) != len(statements):
        raise RuntimeError(f"{len(statements)} statements gave {len(results)} results")
    return results


def insert_select(
    model: type[Model], instance: Model, *, source: str, expressions: dict[str, str] | None = None
) -> tuple[str, list]:
    """`INSERT INTO <table> (<columns>) SELECT <values> FROM <source>` for an unsaved instance:
    one row per row of `source`. Its values are the ones the ORM would save, each cast to its
    column's type (a bare literal in a SELECT list would be text). `expressions` replaces a
    column's placeholder with SQL: with one `%s`, the instance's value is its parameter; with
    none, the value is not sent."""
    expressions = expressions or {}
    fields, columns, casts = _insert_shape(model)
    placeholders, values = [], []
    for field, cast in zip(fields, casts, strict=True):
        raw = field.pre_save(instance, True)
        placeholder = expressions.get(column_name(field))
        if placeholder is None and _is_empty(field, raw):
            # Written out, not sent: most columns of a row are empty (a text message has no
            # file), and psycopg re-parses a statement of more than 50 parameters on every
            # execution instead of keeping its parse (psycopg/_queries.py).
            placeholders.append(f"{_EMPTY_LITERALS[type(raw)]}::{cast}")
            continue
        placeholder = placeholder or f"%s::{cast}"
        placeholders.append(placeholder)
        if "%s" in placeholder:
            values.append(field.get_db_prep_save(raw, connection))
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "
        f"SELECT {', '.join(placeholders)} FROM {source}"
    )
    return sql, values


# The empty values a column takes most often, as SQL literals (their cast follows).
_EMPTY_LITERALS: dict[type, str] = {
    type(None): "NULL",
    str: "''",
    int: "0",
    dict: "'{}'",
    list: "'[]'",
}


def _is_empty(field: Field, value: Any) -> bool:
    if isinstance(field, JSONField) and type(value) not in (dict, list):
        return False  # a JSON "" or 0 is a value, not an empty column
    return type(value) in _EMPTY_LITERALS and not value


@cache
def _insert_shape(model: type[Model]) -> tuple[list[Field], str, list[str]]:
    fields = [
        field
        for field in model._meta.concrete_fields
        if not (field.primary_key and field.db_returning)  # a serial id comes from its sequence
    ]
    columns = ", ".join(quote(column_name(field)) for field in fields)
    return fields, columns, [_cast_type(field) for field in fields]


def _cast_type(field: Field) -> str:
    """The column's type without a length: an explicit cast to varchar(n) would cut a longer
    value silently, where the INSERT itself refuses it."""
    return re.sub(r"^(varchar|char)\(\d+\)$", r"\1", field.cast_db_type(connection) or "")


def column_name(field: Field) -> str:
    """A concrete field's column (Django types it optional: only concrete fields have one)."""
    if field.column is None:
        raise TypeError(f"{field} has no column")
    return field.column


def quote(name: str) -> str:
    return connection.ops.quote_name(name)
