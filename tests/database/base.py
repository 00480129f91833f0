"""The tests' PostgreSQL backend: Django's own, but a transactional test's flush deletes the
rows instead of truncating the tables.

pytest-django flushes the database after every `django_db(transaction=True)` test, and Django's
flush on PostgreSQL is one TRUNCATE of every table: each truncated table gets new files, and
that took about 0.3 s a test here, most of the suite's time between tests. DELETE of the few
rows a test leaves takes milliseconds. The foreign keys Django makes are deferred to the
commit, so the order of the deletes does not matter. The content types and permissions are
kept (only migrations make them, and the flush's post_migrate would make them again). Nothing
else differs from the backend chatbridge runs on: only a flush calls sql_flush.
"""

from django.db.backends.postgresql import base, operations

# Tables only migrations fill: a flush that keeps them leaves post_migrate nothing to make.
KEPT = {"django_content_type", "auth_permission"}


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade:
            return super().sql_flush(
                style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return [
            f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
            for table in tables
            if table not in KEPT
        ]


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
