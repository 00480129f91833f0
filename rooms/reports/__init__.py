"""The admin's reports: per day, area and agent, from the room events, messages, surveys and
agents' presence chatbridge stores (README, *Reports*).

statements.py   the SQL: one query for the day, area and agent tables and their totals, one for
                the closure reasons (PostgreSQL)
selectors.py    the figures, their ORM path (SQLite, and the tests' comparison), who may read them
forms.py        the filters: period, area, agent
tables.py       the tables' columns, as the page shows them and as CSV
charts.py       the charts, as inline SVG
page.py         what the page shows of a report: summary, charts, tables, CSV links
views.py        the page and its CSV downloads (served by the admin site)
receivers.py    the figures that are counters and histograms, to /metrics as they happen
backfill.py     the rooms' first instants from their events (migration 0018, and its command)
"""
