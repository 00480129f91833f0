"""A room's first hand-off, first assignment and first agent message, kept on the room
(Room.first_queued_at, first_assigned_at, first_answered_at): the reports read them there
instead of aggregating a period's events and agents' messages, which took about half of a
quarter's page.

The rooms handed off so far get them from their events and messages, a few thousand rooms per
transaction so that no long one holds the rooms the desk is working on. The two indexes the
reports aggregated through (hand-offs and assignments by time, agents' messages by time) are
then no longer read: they are dropped, CONCURRENTLY on PostgreSQL (the message table keeps
taking writes meanwhile), hence a migration that is not atomic.
"""

from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations, models, transaction
from django.db.migrations.operations import RemoveIndex
from django.db.models import OuterRef, Subquery

BATCH = 5000


def first_instants_fill(apps, schema_editor):
    Room = apps.get_model("rooms", "Room")
    RoomEvent = apps.get_model("rooms", "RoomEvent")
    Message = apps.get_model("rooms", "Message")
    db = schema_editor.connection.alias

    def first(rows) -> Subquery:
        return Subquery(rows.filter(room=OuterRef("pk")).order_by("created_at").values("created_at")[:1])

    handed_off = Room.objects.using(db).filter(queued_at__isnull=False, first_queued_at__isnull=True)
    last = 0
    while True:
        ids = list(handed_off.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return
        with transaction.atomic(using=db):
            Room.objects.using(db).filter(pk__in=ids).update(
                first_queued_at=first(RoomEvent.objects.filter(kind="room.queued")),
                first_assigned_at=first(RoomEvent.objects.filter(kind="room.assigned")),
                first_answered_at=first(Message.objects.filter(author="agent")),
            )
        last = ids[-1]


class RemoveIndexConcurrentlyWherePossible(RemoveIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return RemoveIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return RemoveIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_backwards(app_label, schema_editor, from_state, to_state)


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
        RemoveIndexConcurrentlyWherePossible(model_name="message", name="message_agent"),
        RemoveIndexConcurrentlyWherePossible(model_name="roomevent", name="event_handoff"),
    ]
