"""The agents' search over message texts (rooms/desk/history.py): a text search configuration,
Spanish with accents ignored, and a GIN index of every message's words in it.

PostgreSQL only (the embedded SQLite run searches by substring). The index is built
CONCURRENTLY, so a bank's message table keeps taking writes while it is made; hence the
migration is not atomic.
"""

from django.db import migrations

CONFIG = "chatbridge_spanish"
# Exactly the SQL of rooms.desk.history.SEARCH_DOCUMENT: a query uses the index only if it
# asks with the same expression (tests/rooms/desk/test_history.py checks the plan).
EXPRESSION = f"to_tsvector('{CONFIG}'::regconfig, COALESCE(\"text\", ''))"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    statements = [
        "CREATE EXTENSION IF NOT EXISTS unaccent",
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = '{CONFIG}') THEN
                CREATE TEXT SEARCH CONFIGURATION {CONFIG} (COPY = pg_catalog.spanish);
                ALTER TEXT SEARCH CONFIGURATION {CONFIG}
                    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, spanish_stem;
            END IF;
        END $$""",
        # A concurrent build that failed leaves an invalid index behind, which IF NOT EXISTS
        # would keep (and every search would read the whole table): build it again instead.
        """DO $$ BEGIN
            IF EXISTS (
                SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid
                WHERE pg_class.relname = 'message_text_search' AND NOT pg_index.indisvalid
            ) THEN
                DROP INDEX message_text_search;
            END IF;
        END $$""",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS message_text_search"
        f" ON rooms_message USING gin ({EXPRESSION})",
    ]
    with schema_editor.connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DROP INDEX CONCURRENTLY IF EXISTS message_text_search")
        cursor.execute(f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {CONFIG}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("rooms", "0011_room_notes")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
