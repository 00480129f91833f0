"""A room's first hand-off, first assignment and first agent message, kept on the room
(Room.first_queued_at, first_assigned_at, first_answered_at): the reports read them there
instead of aggregating a period's events and agents' messages, which took about half of a
quarter's page.

The rooms handed off so far get them from their events and messages (rooms/reports/backfill.py,
a few thousand rooms per transaction; `manage.py room_first_instants_fill` runs it again once
every process runs this version). The index the reports aggregated hand-offs and assignments
through is then no longer read: it is dropped, CONCURRENTLY on PostgreSQL (the event table keeps
taking writes meanwhile), hence a migration that is not atomic. (Agents' messages by time stay
indexed: a supervisor's overview reads them.)
"""

from django.db import migrations, models

from chatbridge.index_operations import RemoveIndexConcurrentlyWherePossible
from rooms.reports.backfill import first_instants_fill as fill


def first_instants_fill(apps, schema_editor):
    fill(
        room=apps.get_model("rooms", "Room"),
        event=apps.get_model("rooms", "RoomEvent"),
        message=apps.get_model("rooms", "Message"),
        using=schema_editor.connection.alias,
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("rooms", "0017_whatsapp_numbers")]

    operations = [
        migrations.AddField(
            model_name="room",
            name="first_queued_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="room",
            name="first_assigned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="room",
            name="first_answered_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(first_instants_fill, migrations.RunPython.noop),
        RemoveIndexConcurrentlyWherePossible(model_name="roomevent", name="event_handoff"),
    ]
