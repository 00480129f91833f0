"""manage.py room_first_instants_fill: the handed-off rooms' first hand-off, assignment and agent
message from their events (rooms/reports/backfill.py), once every process runs a version that
writes them: the rooms an older process touched while migration rooms.0018 ran."""

from django.core.management.base import BaseCommand

from rooms.models import Message, Room, RoomEvent
from rooms.reports.backfill import first_instants_fill


class Command(BaseCommand):
    help = "Fill the handed-off rooms' first instants from their events (after an upgrade)."

    def handle(self, *args: object, **options: object) -> None:
        read = first_instants_fill(room=Room, event=RoomEvent, message=Message)
        self.stdout.write(f"{read} handed-off rooms read; their first instants are their events'")
