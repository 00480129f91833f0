"""The reports' indexes (rooms/reports/statements.py): rooms by when they opened, hand-offs and
assignments by time (with their kind and room, so the reports read the index alone), a room's
assignments in order, agents' messages by time (with their room). The columns the reports read
are key columns rather than INCLUDE ones, which SQLite does not have.

The message and event tables are the largest a bank's desk has: on PostgreSQL the indexes are
built CONCURRENTLY, so both keep taking writes while they are made (hence not atomic), and an
invalid index a failed build left behind is dropped and built again rather than kept. SQLite
(the embedded run) builds them plainly.
"""

from django.db import migrations, models

from chatbridge.index_operations import AddIndexConcurrentlyWherePossible


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
