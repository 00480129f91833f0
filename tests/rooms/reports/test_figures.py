"""Every figure of the reports on the small desk of conftest.py, worked out by hand; the filters;
one query per table; and the ORM path (SQLite's) giving what the SQL gives."""

import dataclasses
import datetime as dt

import pytest

from bench.reports import generate
from rooms.models import Room
from rooms.reports.selectors import (
    NO_ONE,
    Figures,
    closure_rows_orm,
    figures_rows_orm,
    percentile,
    report_period,
    report_read,
)
from rooms.reports.statements import closure_rows, figures_rows
from tests.rooms.reports.conftest import MONDAY, TUESDAY, Desk

pytestmark = pytest.mark.django_db


def read(desk: Desk, first: dt.date = MONDAY, last: dt.date = TUESDAY, **filters):
    period = report_period(first_day=first, last_day=last, **filters)
    return report_read(
        period=period,
        area_names={desk.general.pk: "General", desk.level_2.pk: "Nivel 2"},
        agent_names={desk.ana.pk: "Ana Gómez", desk.beto.pk: "Beto Ruiz"},
    )


def figures(**given) -> Figures:
    """The figures of a row: what is given, nothing elsewhere."""
    return Figures(**given)


def test_the_totals_of_the_two_days(desk):
    total = read(desk).total

    assert total == figures(
        conversations=6,  # R1-R6; R0 opened on Sunday where the bank works
        closed=5,
        bot_alone=1,  # R1
        handed_off=4,  # R2-R5
        closed_in_queue=1,  # R4
        wait_p50=120.0,  # of 60 (R2), 180 (R3), 120 (R5)
        wait_p90=168.0,  # 120 + 0.8 * (180 - 120): interpolated, as percentile_cont
        first_response_p50=60.0,  # of 30, 60, 60
        first_response_p90=60.0,
        handling_p50=1020.0,  # of 600, 1,020, 1,050
        handling_p90=1044.0,
        surveys=4,  # R1, R2, R3, R5
        surveys_answered=3,  # R5's has no answer
        nps_answers=3,
        promoters=2,  # 10 and 9
        detractors=1,  # 2
        resolved_answers=2,
        resolved_yes=1,
        satisfaction_answers=2,
        satisfaction_sum=7,
        online_seconds=4 * 3600 + 1800 + 2 * 3600,  # Sunday's hour is outside
        available_seconds=6 * 3600,
    )
    assert total.containment == 20.0  # 1 of the 5 that ended
    assert total.response_rate == 75.0
    assert total.nps == pytest.approx(100 / 3)  # (2 - 1) of 3 answers
    assert total.satisfaction == 3.5
    assert total.resolved_rate == 50.0


def test_by_day_in_the_business_time_zone(desk):
    report = read(desk)

    monday, tuesday = (row.figures for row in report.days)
    assert [row.key for row in report.days] == [MONDAY, TUESDAY]
    assert monday == figures(
        conversations=3,
        closed=3,
        bot_alone=1,
        handed_off=2,
        wait_p50=120.0,
        wait_p90=168.0,
        first_response_p50=45.0,
        first_response_p90=57.0,
        handling_p50=810.0,
        handling_p90=978.0,
        surveys=3,
        surveys_answered=3,
        nps_answers=3,
        promoters=2,
        detractors=1,
        resolved_answers=2,
        resolved_yes=1,
        satisfaction_answers=2,
        satisfaction_sum=7,
        online_seconds=16200.0,
        available_seconds=14400.0,
    )
    # R6 opened at 04:30 UTC on Wednesday: Tuesday night in Bogotá.
    assert tuesday == figures(
        conversations=3,
        closed=2,
        handed_off=2,
        closed_in_queue=1,
        wait_p50=120.0,
        wait_p90=120.0,
        first_response_p50=60.0,
        first_response_p90=60.0,
        handling_p50=1050.0,
        handling_p90=1050.0,
        surveys=1,
        online_seconds=7200.0,
        available_seconds=7200.0,
    )


def test_a_day_without_conversations_has_its_row(desk):
    report = read(desk, first=MONDAY - dt.timedelta(days=7), last=TUESDAY + dt.timedelta(days=1))

    assert len(report.days) == 10
    assert report.days[-1].figures == Figures()


def test_by_area_the_bots_own_apart(desk):
    areas = {row.label: row.figures for row in read(desk).areas}

    assert list(areas) == ["General", "Nivel 2", NO_ONE]
    assert areas["General"] == figures(
        conversations=2,
        closed=2,
        handed_off=2,
        wait_p50=120.0,
        wait_p90=168.0,
        first_response_p50=45.0,
        first_response_p90=57.0,
        handling_p50=810.0,
        handling_p90=978.0,
        surveys=2,
        surveys_answered=2,
        nps_answers=2,
        promoters=2,
        resolved_answers=2,
        resolved_yes=1,
        satisfaction_answers=2,
        satisfaction_sum=7,
        online_seconds=16200.0,  # Ana works General
        available_seconds=14400.0,
    )
    assert areas["Nivel 2"].conversations == 2
    assert areas["Nivel 2"].closed_in_queue == 1
    assert areas["Nivel 2"].online_seconds == 7200.0  # Beto
    assert areas[NO_ONE] == figures(
        conversations=2,  # R1, R6
        closed=1,
        bot_alone=1,
        surveys=1,
        surveys_answered=1,
        nps_answers=1,
        detractors=1,
    )


def test_by_agent_who_had_it_last(desk):
    agents = {row.label: row.figures for row in read(desk).agents}

    assert list(agents) == ["Ana Gómez", "Beto Ruiz", NO_ONE]
    assert agents["Ana Gómez"] == figures(
        conversations=1,  # R2; R3 went on to Beto
        closed=1,
        handed_off=1,
        wait_p50=60.0,
        wait_p90=60.0,
        first_response_p50=30.0,
        first_response_p90=30.0,
        handling_p50=600.0,
        handling_p90=600.0,
        surveys=1,
        surveys_answered=1,
        nps_answers=1,
        promoters=1,
        resolved_answers=1,
        resolved_yes=1,
        satisfaction_answers=1,
        satisfaction_sum=5,
        online_seconds=16200.0,
        available_seconds=14400.0,
    )
    # R3 (transferred to him) and R5 (handed back to the bot: its room has no agent now).
    beto = agents["Beto Ruiz"]
    assert (beto.conversations, beto.first_response_p50, beto.handling_p50) == (2, 60.0, 1035.0)
    assert (beto.surveys, beto.surveys_answered, beto.online_seconds) == (2, 1, 7200.0)
    assert agents[NO_ONE].conversations == 3  # R1, R4 (closed in the queue), R6


def test_closure_reasons(desk):
    closures = [dataclasses.astuple(closure) for closure in read(desk).closures]

    assert closures == [
        ("Inactividad del cliente", 2, 0, 1, 40.0),  # R1 (the bot alone), R5
        ("Resuelto", 2, 2, 0, 40.0),
        ("Fuera del horario de atención", 1, 0, 0, 20.0),
    ]


def test_an_area_filter(desk):
    report = read(desk, area_id=desk.level_2.pk)

    assert (report.total.conversations, report.total.closed_in_queue) == (2, 1)  # R4, R5
    assert report.total.online_seconds == 7200.0  # only its agents' presence
    assert [row.label for row in report.areas] == ["Nivel 2"]
    assert [row.label for row in report.agents] == ["Beto Ruiz", NO_ONE]
    assert [(c.reason, c.closed) for c in report.closures] == [
        ("Fuera del horario de atención", 1),
        ("Inactividad del cliente", 1),
    ]


def test_the_default_areas_filter_keeps_rooms_handed_off_before_areas(desk):
    # A hand-off from before areas existed has no area: the default area's, not the bot's.
    Room.objects.filter(pk=desk.rooms["R2"].pk).update(area=None)

    report = read(desk, area_id=desk.general.pk)

    assert report.total.conversations == 2  # R2, R3; not the bot's R1 and R6


def test_an_agent_filter(desk):
    report = read(desk, agent_id=desk.beto.pk)

    assert report.total.conversations == 2
    assert report.total.handling_p50 == 1035.0
    assert report.total.online_seconds == 7200.0
    assert [(c.reason, c.closed) for c in report.closures] == [
        ("Inactividad del cliente", 1),
        ("Resuelto", 1),
    ]


def test_one_day(desk):
    report = read(desk, first=TUESDAY, last=TUESDAY)

    assert report.total.conversations == 3
    assert [row.key for row in report.days] == [TUESDAY]


def test_one_query_per_table(desk, django_assert_num_queries):
    period = report_period(first_day=MONDAY, last_day=TUESDAY)

    # The day, area and agent tables and the totals in one; the closure reasons in another.
    with django_assert_num_queries(2):
        report_read(period=period, area_names={}, agent_names={})


def test_the_orm_path_gives_what_the_sql_gives_on_the_small_desk(desk):
    for filters in ({}, {"area_id": desk.level_2.pk}, {"agent_id": desk.beto.pk}):
        period = report_period(first_day=MONDAY, last_day=TUESDAY, **filters)
        assert _same(_by_key(figures_rows_orm(period)), _by_key(figures_rows(period)))
        assert sorted(closure_rows_orm(period)) == sorted(closure_rows(period))


def test_the_orm_path_gives_what_the_sql_gives_on_generated_weeks(settings):
    settings.BUSINESS_TIMEZONE = "America/Bogota"
    generate(rooms=600, days=14)
    today = dt.datetime.now(tz=dt.UTC).date()
    period = report_period(first_day=today - dt.timedelta(days=20), last_day=today)

    sql, orm = _by_key(figures_rows(period)), _by_key(figures_rows_orm(period))

    assert (
        sum(values["conversations"] for (table, _), values in sql.items() if table == "day") == 600
    )
    assert _same(sql, orm)
    assert sorted(closure_rows(period)) == sorted(closure_rows_orm(period))


def _by_key(rows):
    return {(table, key): values for table, key, values in rows}


def _same(these: dict, those: dict) -> bool:
    """The same rows with the same figures (seconds added in another order may differ in their
    last bits)."""
    assert these.keys() == those.keys()
    for key, values in these.items():
        for name, value in values.items():
            other = those[key][name]
            assert (value is None) == (other is None), (key, name)
            assert value is None or value == pytest.approx(other, abs=1e-6), (key, name)
    return True


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.5, None), ([7.0], 0.9, 7.0), ([1.0, 2.0], 0.5, 1.5), ([3.0, 1.0, 2.0, 4.0], 0.9, 3.7)],
)
def test_percentile_interpolates_as_postgresql(values, fraction, expected):
    found = percentile(values, fraction)
    assert found == (None if expected is None else pytest.approx(expected))
