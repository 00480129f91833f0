"""The reports' SQL: each table of the page in one indexed query (PostgreSQL only).

`figures_rows` answers the day, area and agent tables and the totals at once: the conversations
of the period, each with its first hand-off, first assignment and first agent message (the
instants of those events, which the room keeps: Room.first_queued_at and its kin) and its
survey, added up for each grouping set; and the agents' presence stretches added up the same
way. `closure_rows` answers the closure reasons. Their ORM path, which does
the same arithmetic in Python (SQLite, and the tests that compare the two), is
rooms/reports/selectors.py's `figures_rows_orm` and `closure_rows_orm`.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection

from chatbridge.statements import quote
from rooms.models import Area, Message, Room, RoomEvent, Survey
from users.models import AgentPresence

# GROUPING(day, area_id, agent_id) of each grouping set: a bit for each column *not* grouped by.
GROUPINGS = {0b011: "day", 0b101: "area", 0b110: "agent", 0b111: "total"}


@dataclass(frozen=True)
class Period:
    """What a report covers: the conversations opened between two instants (midnights where the
    bank works), in one area and of one agent when given."""

    start: dt.datetime
    end: dt.datetime
    zone: str
    default_area_id: int
    area_id: int | None = None
    agent_id: int | None = None

    def params(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "zone": self.zone,
            "default_area": self.default_area_id,
            "area": self.area_id,
            "agent": self.agent_id,
        }


_TABLES = {
    "room": quote(Room._meta.db_table),
    "event": quote(RoomEvent._meta.db_table),
    "message": quote(Message._meta.db_table),
    "survey": quote(Survey._meta.db_table),
    "presence": quote(AgentPresence._meta.db_table),
    "area_agents": quote(Area.agents.through._meta.db_table),
}

# The period's conversations, each in its area (none for the bot's own; a room handed off before
# areas existed is the default area's) and with who had it last: the room's agent, or (handed
# back to the bot, released, moved to another area) the agent of its last assignment, looked up
# only for those few.
_ROOMS = """
room AS (
    SELECT r.id, (r.opened_at AT TIME ZONE %(zone)s)::date AS day,
           CASE WHEN r.area_id IS NOT NULL THEN r.area_id
                WHEN r.queued_at IS NOT NULL THEN %(default_area)s END AS area_id,
           COALESCE(r.agent_id, CASE WHEN r.queued_at IS NOT NULL THEN (
               SELECT (e.data ->> 'agent')::bigint FROM {event} e
               WHERE e.room_id = r.id AND e.kind = 'room.assigned' ORDER BY e.seq DESC LIMIT 1
           ) END) AS agent_id,
           r.status = 'closed' AS closed, r.queued_at IS NOT NULL AS handed_off, r.closed_at,
           r.closed_by_id, r.closed_reason, r.first_queued_at, r.first_assigned_at,
           r.first_answered_at
    FROM {room} r
    WHERE r.opened_at >= %(start)s AND r.opened_at < %(end)s
      AND (%(area)s::bigint IS NULL OR r.area_id = %(area)s
           OR (%(area)s = %(default_area)s AND r.area_id IS NULL AND r.queued_at IS NOT NULL))
)"""

_FIGURES = (
    "WITH"
    + _ROOMS
    + """,
room_of_agent AS (
    SELECT * FROM room WHERE %(agent)s::bigint IS NULL OR agent_id = %(agent)s
),
fact AS (
    SELECT r.day, r.area_id, r.agent_id, r.closed, r.handed_off,
           r.handed_off AND r.closed AND r.first_assigned_at IS NULL AS closed_in_queue,
           date_part('epoch', r.first_assigned_at - r.first_queued_at) AS wait,
           date_part('epoch', r.first_answered_at - r.first_assigned_at) AS first_response,
           date_part('epoch', r.closed_at - r.first_assigned_at) AS handling,
           s.id IS NOT NULL AS surveyed,
           s.nps IS NOT NULL OR s.resolved IS NOT NULL OR s.satisfaction IS NOT NULL
               OR s.comment <> '' AS survey_answered,
           s.nps, s.resolved, s.satisfaction
    FROM room_of_agent r
    LEFT JOIN {survey} s ON s.room_id = r.id
),
talk AS (
    SELECT GROUPING(day, area_id, agent_id) AS grouping, day, area_id, agent_id,
           COUNT(*) AS conversations,
           COUNT(*) FILTER (WHERE closed) AS closed,
           COUNT(*) FILTER (WHERE closed AND NOT handed_off) AS bot_alone,
           COUNT(*) FILTER (WHERE handed_off) AS handed_off,
           COUNT(*) FILTER (WHERE closed_in_queue) AS closed_in_queue,
           percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY wait) AS wait,
           percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY first_response)
               AS first_response,
           percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY handling) AS handling,
           COUNT(*) FILTER (WHERE surveyed) AS surveys,
           COUNT(*) FILTER (WHERE survey_answered) AS surveys_answered,
           COUNT(nps) AS nps_answers,
           COUNT(*) FILTER (WHERE nps >= 9) AS promoters,
           COUNT(*) FILTER (WHERE nps <= 6) AS detractors,
           COUNT(resolved) AS resolved_answers,
           COUNT(*) FILTER (WHERE resolved) AS resolved_yes,
           COUNT(satisfaction) AS satisfaction_answers,
           SUM(satisfaction) AS satisfaction_sum
    FROM fact
    GROUP BY GROUPING SETS ((day), (area_id), (agent_id), ())
),
-- Agents' presence: the stretches of the period (each lies within one day), of the agent, and of
-- the agents who work the area (the default area's: those who work none).
presence AS (
    SELECT p.user_id, (p.started_at AT TIME ZONE %(zone)s)::date AS day, p.available,
           date_part('epoch', p.seen_at - p.started_at) AS seconds
    FROM {presence} p
    WHERE p.started_at >= %(start)s AND p.started_at < %(end)s
      AND (%(agent)s::bigint IS NULL OR p.user_id = %(agent)s)
      AND (%(area)s::bigint IS NULL
           OR EXISTS (SELECT 1 FROM {area_agents} w
                      WHERE w.user_id = p.user_id AND w.area_id = %(area)s)
           OR (%(area)s = %(default_area)s
               AND NOT EXISTS (SELECT 1 FROM {area_agents} w WHERE w.user_id = p.user_id)))
),
online AS (
    SELECT CASE GROUPING(day, user_id) WHEN 1 THEN 3 WHEN 2 THEN 6 ELSE 7 END AS grouping,
           day, NULL::bigint AS area_id, user_id AS agent_id,
           SUM(seconds) AS online, COALESCE(SUM(seconds) FILTER (WHERE available), 0) AS available
    FROM presence
    GROUP BY GROUPING SETS ((day), (user_id), ())
    UNION ALL
    SELECT 5, NULL, COALESCE(w.area_id, %(default_area)s), NULL,
           SUM(seconds), COALESCE(SUM(seconds) FILTER (WHERE available), 0)
    FROM presence LEFT JOIN {area_agents} w ON w.user_id = presence.user_id
    WHERE %(area)s::bigint IS NULL OR COALESCE(w.area_id, %(default_area)s) = %(area)s
    GROUP BY COALESCE(w.area_id, %(default_area)s)
)
SELECT COALESCE(t.grouping, o.grouping), COALESCE(t.day, o.day),
       COALESCE(t.area_id, o.area_id), COALESCE(t.agent_id, o.agent_id),
       COALESCE(t.conversations, 0), COALESCE(t.closed, 0), COALESCE(t.bot_alone, 0),
       COALESCE(t.handed_off, 0), COALESCE(t.closed_in_queue, 0),
       t.wait[1], t.wait[2], t.first_response[1], t.first_response[2],
       t.handling[1], t.handling[2],
       COALESCE(t.surveys, 0), COALESCE(t.surveys_answered, 0), COALESCE(t.nps_answers, 0),
       COALESCE(t.promoters, 0), COALESCE(t.detractors, 0), COALESCE(t.resolved_answers, 0),
       COALESCE(t.resolved_yes, 0), COALESCE(t.satisfaction_answers, 0),
       COALESCE(t.satisfaction_sum, 0), COALESCE(o.online, 0), COALESCE(o.available, 0)
FROM talk t
FULL JOIN online o ON o.grouping = t.grouping
    AND COALESCE(o.day, DATE '1970-01-01') = COALESCE(t.day, DATE '1970-01-01')
    AND COALESCE(o.area_id, 0) = COALESCE(t.area_id, 0)
    AND COALESCE(o.agent_id, 0) = COALESCE(t.agent_id, 0)
"""
).format(**_TABLES)

# The columns of a figures row after its grouping and its three keys, in order.
FIGURE_COLUMNS = (
    "conversations",
    "closed",
    "bot_alone",
    "handed_off",
    "closed_in_queue",
    "wait_p50",
    "wait_p90",
    "first_response_p50",
    "first_response_p90",
    "handling_p50",
    "handling_p90",
    "surveys",
    "surveys_answered",
    "nps_answers",
    "promoters",
    "detractors",
    "resolved_answers",
    "resolved_yes",
    "satisfaction_answers",
    "satisfaction_sum",
    "online_seconds",
    "available_seconds",
)


def figures_rows(period: Period) -> list[tuple[str, Any, dict[str, Any]]]:
    """The day, area and agent tables and the totals of `period`, in one query: (table, key,
    figures) for each row; the key a date, an area id, an agent id (None: no agent, the bot's
    conversations) or None for the totals."""
    out = []
    for grouping, day, area_id, agent_id, *values in _rows(_FIGURES, period):
        table = GROUPINGS[grouping]
        key = {"day": day, "area": area_id, "agent": agent_id, "total": None}[table]
        out.append((table, key, dict(zip(FIGURE_COLUMNS, values, strict=True))))
    return out


_CLOSURES = (
    "WITH"
    + _ROOMS
    + """
SELECT closed_reason, COUNT(*),
       COUNT(*) FILTER (WHERE closed_by_id IS NOT NULL),
       COUNT(*) FILTER (WHERE NOT handed_off)
FROM room
WHERE closed AND (%(agent)s::bigint IS NULL OR agent_id = %(agent)s)
GROUP BY closed_reason
"""
).format(**_TABLES)


def closure_rows(period: Period) -> list[tuple[str, int, int, int]]:
    """The period's closed conversations by their reason, in one query: (reason, closed, closed
    by a person, of them the bot's alone)."""
    return [tuple(row) for row in _rows(_CLOSURES, period)]


def _rows(sql: str, period: Period) -> list[tuple]:
    """The rows of `sql`, run without JIT compilation and with room to sort in memory. The
    reports' cost estimates cross PostgreSQL's jit_above_cost, and compiling took seconds (2.1 s
    against 0.37 s for 30 days of 100,000 rooms); a quarter's conversations sort in about 15 MB,
    which the default 4 MB of work_mem sends to disk. SET LOCAL holds for the string's own
    implicit transaction (one round trip: Django's psycopg cursor binds on the client), or to the
    end of the caller's."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SET LOCAL jit = off;\nSET LOCAL work_mem = '32MB';\n{sql}", period.params()
        )
        cursor.nextset()
        cursor.nextset()
        return cursor.fetchall()
