"""Cross-process locks on PostgreSQL advisory locks (a process-local lock on SQLite).

PostgreSQL releases an advisory lock when its transaction (xact) or connection (session) ends,
so a process killed while holding one never leaves it behind.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

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
def lock_for_session(namespace: int, key: int) -> Iterator[None]:
    """Held for the block, outside any transaction, so vendor calls can run inside it."""
    if connection.vendor != "postgresql":
        with _local_lock(namespace, key):
            yield
        return
    args = advisory_key(namespace, key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", args)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", args)
