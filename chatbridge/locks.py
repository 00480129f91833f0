"""Cross-process locks on PostgreSQL advisory locks (a process-local lock on SQLite).

PostgreSQL releases an advisory lock when its transaction (xact) or connection (session) ends,
so a process killed while holding one never leaves it behind.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.db import DatabaseError, connection

from chatbridge.statements import run_statements

# Lock namespaces (the first key of the two-key form).
CUSTOMER_STORE = 0x6362_0001
ROOM_TURN = 0x6362_0002
ASSIGNMENT = 0x6362_0003

_local_locks: dict[tuple[int, int], threading.Lock] = {}
_local_locks_guard = threading.Lock()


def _int4(value: int) -> int:
    """Advisory keys are int4: fold larger ids (a shared key only serialises a bit more)."""
    return (value % 2**32) - 2**31


def advisory_key(namespace: int, key: int) -> tuple[int, int]:
    """The two int4 keys of `pg_advisory_*(key1, key2)` for a lock of this module."""
    return _int4(namespace), _int4(key)


def _local_lock(namespace: int, key: int) -> threading.Lock:
    with _local_locks_guard:
        return _local_locks.setdefault((namespace, key), threading.Lock())


def lock_for_transaction(namespace: int, key: int) -> None:
    """Held until the current transaction ends. Call inside atomic()."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", advisory_key(namespace, key))
    # SQLite runs IMMEDIATE transactions: writers are serialised already.


@contextmanager
def lock_for_session(
    namespace: int, key: int, *, then: tuple[str, list] | None = None
) -> Iterator[list[tuple]]:
    """Held for the block, outside any transaction, so vendor calls can run inside it.

    `then` is a read that needs the lock (SQL and its parameters): on PostgreSQL it goes in the
    lock's own round trip and runs once the lock is held. The block gets its rows ([] without)."""
    if connection.vendor != "postgresql":
        with _local_lock(namespace, key):
            yield _read(then)
        return
    args = advisory_key(namespace, key)
    lock = "SELECT pg_advisory_lock(%s, %s)"
    try:
        if then is None:
            with connection.cursor() as cursor:
                cursor.execute(lock, args)
            rows = []
        else:
            _, rows = run_statements([lock, then[0]], [*args, *then[1]])
    except Exception:
        # A session lock outlives the failed statement after it: let it go before the
        # connection goes back to the pool (a broken connection takes it with it anyway).
        with suppress(DatabaseError):
            _unlock(args)
        raise
    try:
        yield rows
    finally:
        _unlock(args)


def _unlock(args: tuple[int, int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", args)


def _read(query: tuple[str, list] | None) -> list[tuple]:
    if query is None:
        return []
    with connection.cursor() as cursor:
        cursor.execute(*query)
        return cursor.fetchall()
