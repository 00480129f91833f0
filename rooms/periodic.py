"""One pass of the periodic job (`manage.py periodic`): every stage's chores, in one place."""

from django.conf import settings

from chatbridge.worker.liveness import tasks_reclaim
from rooms.bot.recovery import turns_resume
from rooms.conversation.lifecycle import rooms_close_inactive, rooms_close_out_of_hours
from rooms.conversation.survey import surveys_expire
from rooms.desk.alerts import alerts_raise
from rooms.desk.assignment import assignment_run
from rooms.media.tasks import media_fetches_resume
from users.services import login_failures_prune


def periodic_run() -> dict[str, int]:
    resumed = turns_resume(older_than_seconds=settings.TURN_RESUME_AFTER_SECONDS)
    login_failures_prune()
    return {
        "reclaimed": tasks_reclaim(),
        "inactive": rooms_close_inactive(),
        "out_of_hours": rooms_close_out_of_hours(),
        "resumed": resumed.turns,
        "resent": resumed.resent,
        "assigned": assignment_run(),
        "media_resumed": media_fetches_resume(),
        "alerts": alerts_raise(),
        "surveys_expired": surveys_expire(),
    }
