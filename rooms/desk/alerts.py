"""Supervisors' alerts: a room waiting in the queue longer than QUEUE_ALERT_MINUTES, a customer
in an agent's room unanswered longer than AGENT_REPLY_ALERT_MINUTES (both raised by the periodic
job), a survey's recommendation below SURVEY_LOW_NPS (raised by its answer). Once per room and
cause (a unique constraint, so two jobs at once raise one), shown live in the
supervisors' consoles and e-mailed to the addresses operators keep in the admin."""

import datetime as dt
import logging
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django_tasks import task

from chatbridge.tasks import enqueue_with_transaction
from rooms import realtime
from rooms.models import Alert, AlertRecipient, Message, Room, Survey

logger = logging.getLogger("chatbridge.alerts")

RECENT_ALERTS = 50


def alerts_raise(*, now: dt.datetime | None = None) -> int:
    """Raise what is due and not raised yet; how many were raised."""
    now = now or timezone.now()
    raised = 0
    for room, cause, data in _due(now):
        if _raise(room, cause, data):
            raised += 1
    return raised


def _due(now: dt.datetime) -> list[tuple[Room, str, dict[str, Any]]]:
    due: list[tuple[Room, str, dict[str, Any]]] = []

    def already(cause: str) -> Exists:
        return Exists(Alert.objects.filter(room=OuterRef("pk"), cause=cause))

    if settings.QUEUE_ALERT_MINUTES:
        since = now - dt.timedelta(minutes=settings.QUEUE_ALERT_MINUTES)
        waiting = (
            Room.objects.filter(status=Room.Status.QUEUED, queued_at__lt=since)
            .exclude(already(Alert.Cause.QUEUE_WAIT))
            .select_related("customer")
        )
        for room in waiting:
            minutes = int((now - (room.queued_at or now)).total_seconds() // 60)
            due.append((room, Alert.Cause.QUEUE_WAIT, {"minutes": minutes, "area": room.area_id}))
    if settings.AGENT_REPLY_ALERT_MINUTES:
        since = now - dt.timedelta(minutes=settings.AGENT_REPLY_ALERT_MINUTES)
        answered = Message.objects.filter(
            room=OuterRef("pk"),
            author=Message.Author.AGENT,
            created_at__gte=OuterRef("last_customer_at"),
        )
        unanswered = (
            Room.objects.filter(status=Room.Status.ASSIGNED, last_customer_at__lt=since)
            .filter(Q(assigned_at__isnull=True) | Q(assigned_at__lt=since))
            .exclude(already(Alert.Cause.AGENT_REPLY))
            .exclude(Exists(answered))
            .select_related("customer", "agent")
        )
        for room in unanswered:
            minutes = int((now - (room.last_customer_at or now)).total_seconds() // 60)
            due.append(
                (room, Alert.Cause.AGENT_REPLY, {"minutes": minutes, "agent": room.agent_id})
            )
    return due


def _raise(room: Room, cause: str, data: dict[str, Any]) -> bool:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(room=room, cause=cause, data=data)
            transaction.on_commit(lambda: alert_publish(alert))
            # The e-mail is the worker's (TASKS_BACKEND=database): a slow mail server never
            # holds up the periodic job's other chores.
            enqueue_with_transaction(partial(alert_mail.enqueue, alert_id=alert.pk))
    except IntegrityError:
        return False  # raised meanwhile by another job: once is enough
    logger.info("alert %s for room %s", cause, room.pk)
    return True


def alert_low_score(survey: Survey) -> bool:
    """A customer would not recommend us: raised with their answer, inside its transaction."""
    room = survey.room
    return _raise(room, Alert.Cause.LOW_SCORE, {"nps": survey.nps, "agent": room.agent_id})


def alert_data(alert: Alert) -> dict[str, Any]:
    room = alert.room
    return {
        "id": alert.pk,
        "room": room.pk,
        "cause": alert.cause,
        "minutes": alert.data.get("minutes"),
        "nps": alert.data.get("nps"),
        "agent": alert.data.get("agent"),
        "area": room.area_id,
        "customer": room.customer.name or room.customer.masked_uid,
        "at": alert.created_at.isoformat(),
    }


def alert_publish(alert: Alert) -> None:
    """To the supervisors' consoles (the channel layer: never blocks)."""
    realtime.publish(realtime.SUPERVISORS_GROUP, {"type": "alert.new", "alert": alert_data(alert)})


@task()
def alert_mail(*, alert_id: int) -> None:
    """E-mail an alert to the active recipients; a failing mail server is logged (the alert
    stays raised and shown)."""
    alert = Alert.objects.select_related("room__customer").filter(pk=alert_id).first()
    recipients = list(AlertRecipient.objects.filter(active=True).values_list("email", flat=True))
    if alert is None or not recipients:
        return
    subject, body = _mail(alert, alert_data(alert))
    try:
        send_mail(subject, body, None, recipients)
    except Exception:
        logger.exception("alert %s could not be e-mailed", alert.pk)


def _mail(alert: Alert, data: dict[str, Any]) -> tuple[str, str]:
    if alert.cause == Alert.Cause.LOW_SCORE:
        subject = f"chatbridge: a customer rated {data['nps']} of 10 in the survey"
        what = f"would recommend us {data['nps']} of 10"
    elif alert.cause == Alert.Cause.QUEUE_WAIT:
        subject = f"chatbridge: a customer has waited {data['minutes']} min in the queue"
        what = f"{data['minutes']} minutes"
    else:
        subject = f"chatbridge: a customer has waited {data['minutes']} min for their agent"
        what = f"{data['minutes']} minutes"
    body = (
        f"{alert.get_cause_display()}: room {data['room']} ({data['customer']}), {what}.\n"
        "Open the supervisors' console (Supervisión) to see it."
    )
    return subject, body


def alerts_recent() -> list[dict[str, Any]]:
    """The latest alerts, for a supervisor's snapshot."""
    since = timezone.now() - dt.timedelta(days=1)
    alerts = (
        Alert.objects.filter(created_at__gte=since)
        .select_related("room__customer")
        .order_by("-created_at")[:RECENT_ALERTS]
    )
    return [alert_data(alert) for alert in alerts]
