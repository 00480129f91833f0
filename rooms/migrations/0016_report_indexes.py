"""The reports' indexes (rooms/reports/statements.py): rooms by when they opened, hand-offs and
assignments by time (with their kind and room, so the reports read the index alone), a room's
assignments in order, agents' messages by time (with their room). The columns the reports read
are key columns rather than INCLUDE ones, which SQLite does not have.

The message and event tables are the largest a bank's desk has: on PostgreSQL the indexes are
built CONCURRENTLY, so both keep taking writes while they are made (hence not atomic), and an
invalid index a failed build left behind is dropped and built again rather than kept. SQLite
(the embedded run) builds them plainly.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.migrations.operations import AddIndex


class AddIndexConcurrentlyWherePossible(AddIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                """SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid
                WHERE pg_class.relname = %s AND NOT pg_index.indisvalid""",
                [self.index.name],
            )
            if cursor.fetchone():
                cursor.execute(f'DROP INDEX CONCURRENTLY "{self.index.name}"')
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return AddIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("rooms", "0015_surveys")]

    operations = [
        AddIndexConcurrentlyWherePossible(
            model_name="room",
            index=models.Index(fields=["opened_at"], name="room_opened"),
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="roomevent",
            index=models.Index(
                condition=models.Q(("kind__in", ["room.queued", "room.assigned"])),
                fields=["created_at", "kind", "room"],
                name="event_handoff",
            ),
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="roomevent",
            index=models.Index(
                condition=models.Q(("kind", "room.assigned")),
                fields=["room", "seq"],
                name="event_assigned",
            ),
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="message",
            index=models.Index(
                condition=models.Q(("author", "agent")),
                fields=["created_at", "room"],
                name="message_agent",
            ),
        ),
    ]
