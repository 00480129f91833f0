"""A new task row wakes the turn workers at once (PostgreSQL only).

A trigger on django-tasks-db's table sends NOTIFY `chatbridge_tasks`, which PostgreSQL delivers
when the enqueuing transaction commits: the webhook pays no extra round trip, and `turn_worker`
needs no tight polling loop. SQLite (the embedded run) has no NOTIFY: there the worker polls.
"""

from django.db import migrations

CHANNEL = "chatbridge_tasks"

CREATE = f"""
CREATE OR REPLACE FUNCTION chatbridge_task_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER chatbridge_task_notify
    AFTER INSERT ON django_tasks_database_dbtaskresult
    FOR EACH STATEMENT EXECUTE FUNCTION chatbridge_task_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS chatbridge_task_notify ON django_tasks_database_dbtaskresult;
DROP FUNCTION IF EXISTS chatbridge_task_notify();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("rooms", "0003_default_closure_reasons"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(create, drop)]
