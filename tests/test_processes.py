"""chatbridge as it runs: several Daphne processes (and task workers) on the test database.

Both task backends end to end: `immediate` answers inside the webhook request, `database`
commits a task row with the message and `manage.py db_worker` processes answer it.
"""

import threading
import time
from collections.abc import Iterator

import pytest

from rooms.models import Message, Room
from tests.payloads import message, notification, text_from
from tests.servers import AppProcess, post_signed, start_all, stop_all, wait_until
from users.models import Customer
from watson.models import WatsonSession

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def immediate_servers(fake_vendors) -> Iterator[list[AppProcess]]:
    servers = start_all(
        [
            AppProcess.daphne(TASKS_BACKEND="immediate", CACHE_STATS_FLUSH_SECONDS="0")
            for _ in range(2)
        ]
    )
    yield servers
    stop_all(servers)


@pytest.fixture
def database_servers(fake_vendors) -> Iterator[tuple[list[AppProcess], list[AppProcess]]]:
    servers = [AppProcess.daphne(TASKS_BACKEND="database") for _ in range(2)]
    workers = [AppProcess.worker() for _ in range(2)]
    start_all(servers + workers)
    yield servers, workers
    stop_all(servers + workers)


def _burst(urls: list[str], payloads: list[dict]) -> list[int]:
    """Each payload from its own thread, alternating servers, released together."""
    barrier = threading.Barrier(len(payloads))
    codes = [0] * len(payloads)

    def post(index: int) -> None:
        barrier.wait()
        codes[index] = post_signed(urls[index % len(urls)], payloads[index]).status_code

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return codes


def _assert_one_room_one_session_ordered(whatsapp, wa_id: str, count: int) -> None:
    assert Customer.objects.filter(uid=wa_id).count() == 1
    assert Room.objects.filter(customer__uid=wa_id).count() == 1
    assert WatsonSession.objects.filter(room__customer__uid=wa_id).count() == 1
    inbound = list(
        Message.objects.filter(direction="in", room__customer__uid=wa_id)
        .order_by("id")
        .values_list("text", flat=True)
    )
    assert len(inbound) == count
    replies = [item["text"] for item in whatsapp.sent_to(wa_id)]
    assert replies == [f"Dijiste: {text}" for text in inbound]


def _burst_payloads(wa_id: str, count: int) -> list[dict]:
    base = int(time.time())
    return [
        notification(messages=[message(wa_id, f"ráfaga {i}", timestamp=base + i)])
        for i in range(count)
    ]


def test_immediate_mode_across_two_processes(immediate_servers, whatsapp, watson):
    urls = [server.url for server in immediate_servers]
    wa_id = "573007770001"

    codes = _burst(urls, _burst_payloads(wa_id, 10))

    assert codes == [200] * 10
    _assert_one_room_one_session_ordered(whatsapp, wa_id, 10)
    assert watson.sessions_created == 1


def test_database_mode_across_two_processes_and_two_workers(database_servers, whatsapp, watson):
    servers, _ = database_servers
    urls = [server.url for server in servers]
    wa_id = "573007770002"

    codes = _burst(urls, _burst_payloads(wa_id, 10))

    assert codes == [200] * 10
    # The webhook answered before the turn: the replies come from the workers.
    whatsapp.wait_for_sent(10, timeout=30, to=wa_id)
    wait_until(
        lambda: not Message.objects.filter(direction="in", handled_at__isnull=True).exists(),
        what="every message handled",
    )
    _assert_one_room_one_session_ordered(whatsapp, wa_id, 10)
    assert watson.sessions_created == 1


def test_duplicate_delivered_twenty_times_across_processes(
    immediate_servers, whatsapp, watson, record_fault
):
    urls = [server.url for server in immediate_servers]
    payload = text_from("573007770003", "hola", wamid="wamid.twenty")

    codes = _burst(urls, [payload] * 20)

    assert codes == [200] * 20
    assert Message.objects.filter(direction="in").count() == 1
    assert watson.message_calls == 1
    assert len(whatsapp.sent) == 1
    record_fault(
        "The same webhook 20 times at once across two processes",
        done="20 concurrent deliveries of one message id, alternating servers",
        held="all 200; stored once, one Watson call, one reply",
        times=20,
    )


def test_database_mode_webhook_does_not_wait_for_watson(database_servers, whatsapp, watson):
    servers, _ = database_servers
    watson.delay = 5  # far longer than a webhook takes, even on a busy machine
    try:
        started = time.perf_counter()
        response = post_signed(servers[0].url, text_from("573007770004", "hola"))
        acknowledged = time.perf_counter() - started
        assert response.status_code == 200
        # Stored and acknowledged before Watson has answered; the turn runs in a worker.
        assert acknowledged < watson.delay
        assert whatsapp.sent == []
        whatsapp.wait_for_sent(1, timeout=30, to="573007770004")
    finally:
        watson.delay = 0


@pytest.fixture
def gunicorn_and_turn_worker(fake_vendors) -> Iterator[tuple[AppProcess, AppProcess]]:
    server = AppProcess.gunicorn(TASKS_BACKEND="database")
    # A fallback poll far longer than the test: only the NOTIFY of a new task can wake it.
    worker = AppProcess.turn_worker(threads=8, poll=60)
    start_all([server, worker])
    yield server, worker
    stop_all((server, worker))


def test_gunicorn_and_a_threaded_worker_answer_turns_side_by_side(
    gunicorn_and_turn_worker, whatsapp, watson
):
    """HTTP on gunicorn, as deployed; turns waiting on a slow Watson side by side in one worker
    process: the fake Watson counts the calls it answers at once (a serial worker makes one at a
    time, whatever the machine's speed; the figures are `make bench`'s)."""
    server, worker = gunicorn_and_turn_worker
    watson.delay = 0.6
    customers = [f"57300888{index:04d}" for index in range(8)]
    try:
        codes = _burst([server.url], [text_from(wa_id, "hola") for wa_id in customers])
        assert codes == [200] * 8
        whatsapp.wait_for_sent(8, timeout=60)
    finally:
        watson.delay = 0
    assert sorted(item["to"] for item in whatsapp.sent) == customers
    assert watson.max_in_flight >= 4, f"at most {watson.max_in_flight} Watson calls at once"
    # Woken by the task's NOTIFY: the worker's fallback poll (60 s) is longer than this wait.
    assert post_signed(server.url, text_from(customers[0], "otra")).status_code == 200
    whatsapp.wait_for_sent(9, timeout=30)
    worker.process.terminate()  # finishes what it runs, then exits cleanly
    assert worker.process.wait(timeout=15) == 0, worker.output()


def test_cache_stats_are_summed_over_processes(immediate_servers, client, whatsapp):
    urls = [server.url for server in immediate_servers]
    wa_id = "573007770005"
    for index in range(6):
        assert post_signed(urls[index % 2], text_from(wa_id, f"hola {index}")).status_code == 200
    # Each server adds its counts to the shared totals as it goes (flush interval 0 here).
    families = client.get("/cache/stats").json()["families"]
    assert families["customer"]["hits"] + families["customer"]["misses"] == 6
    assert families["customer"]["hits"] == 5
