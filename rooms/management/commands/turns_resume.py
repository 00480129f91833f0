import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from rooms.bot.recovery import turns_resume


class Command(BaseCommand):
    help = (
        "Start a new turn for messages left unanswered (their process died) and send replies "
        "left unsent. Safe to run in several processes at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=settings.TURN_RESUME_AFTER_SECONDS,
            help="seconds a message must have waited (default TURN_RESUME_AFTER_SECONDS)",
        )
        parser.add_argument(
            "--every", type=float, default=0, help="repeat every N seconds instead of once"
        )

    def handle(self, *args: object, older_than: float, every: float, **options: object) -> None:
        while True:
            result = turns_resume(older_than_seconds=older_than)
            if result.turns or result.resent or not every:
                self.stdout.write(
                    f"resumed {result.turns} turn(s), resent {result.resent} reply(ies)"
                )
            if not every:
                return
            close_old_connections()
            time.sleep(every)
