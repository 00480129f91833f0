import time

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from rooms.periodic import periodic_run


class Command(BaseCommand):
    help = (
        "The periodic job: close inactive rooms (ROOM_INACTIVITY_MINUTES) and rooms outside "
        "BUSINESS_HOURS, resume interrupted turns, serve the queue. Safe in several processes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=float, default=0, help="repeat every N seconds instead of once"
        )

    def handle(self, *args: object, every: float, **options: object) -> None:
        while True:
            done = periodic_run()
            if not every or any(done.values()):
                self.stdout.write(
                    "closed {inactive} inactive and {out_of_hours} out-of-hours room(s); "
                    "resumed {resumed} turn(s), resent {resent} reply(ies); "
                    "reclaimed {reclaimed} task(s) of dead workers; "
                    "assigned {assigned} room(s)".format(**done)
                )
            if not every:
                return
            close_old_connections()
            time.sleep(every)
