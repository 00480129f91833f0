"""Migration operations that build and drop indexes CONCURRENTLY on PostgreSQL (the tables keep
taking writes meanwhile; the migration must not be atomic) and plainly elsewhere (SQLite, the
embedded run). Building one first drops an invalid index a failed concurrent build left behind,
rather than keeping it."""

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations.operations import AddIndex, RemoveIndex
from django.db.migrations.operations.base import Operation


class _ConcurrentlyWherePossible(Operation):
    plain: type[Operation]

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return self.plain.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return self.plain.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_backwards(app_label, schema_editor, from_state, to_state)


class AddIndexConcurrentlyWherePossible(_ConcurrentlyWherePossible, AddIndexConcurrently):
    plain = AddIndex

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(
                    """SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid
                    WHERE pg_class.relname = %s AND NOT pg_index.indisvalid""",
                    [self.index.name],
                )
                if cursor.fetchone():
                    cursor.execute(f'DROP INDEX CONCURRENTLY "{self.index.name}"')
        return super().database_forwards(app_label, schema_editor, from_state, to_state)


class RemoveIndexConcurrentlyWherePossible(_ConcurrentlyWherePossible, RemoveIndexConcurrently):
    plain = RemoveIndex
