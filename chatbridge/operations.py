"""The operators' page in the admin: what chatbridge is doing now."""

import datetime as dt

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from chatbridge.cache import stats
from rooms.assignment import agents_list
from rooms.models import Message, Room

RATE_WINDOW = dt.timedelta(minutes=5)


@staff_member_required
def operations_view(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    queue = Room.objects.filter(status=Room.Status.QUEUED).aggregate(
        length=Count("id"), oldest=Min("queued_at")
    )
    recent = Message.objects.filter(created_at__gte=now - RATE_WINDOW).aggregate(
        inbound=Count("id", filter=Q(direction=Message.Direction.INBOUND)),
        outbound=Count("id", filter=Q(direction=Message.Direction.OUTBOUND)),
    )
    minutes = RATE_WINDOW.total_seconds() / 60
    failed = (
        Message.objects.filter(
            status=Message.Status.FAILED, updated_at__gte=now - dt.timedelta(days=1)
        )
        .select_related("room__customer")
        .order_by("-updated_at")
    )
    agents = agents_list()
    context = {
        **admin.site.each_context(request),
        "title": "Operations",
        "cache": stats.totals(),
        "queue_length": queue["length"],
        "queue_oldest": (now - queue["oldest"]) if queue["oldest"] else None,
        "rooms_by_status": dict(
            Room.objects.values_list("status").annotate(n=Count("id")).order_by()
        ),
        "agents": agents,
        "agents_online": sum(1 for agent in agents if agent.online),
        "inbound_per_minute": recent["inbound"] / minutes,
        "outbound_per_minute": recent["outbound"] / minutes,
        "failed_count": failed.count(),
        "failed": failed[:20],
    }
    return render(request, "admin/operations.html", context)
