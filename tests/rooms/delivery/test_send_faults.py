"""Never doubled, never stranded, with real processes killed by SIGKILL and a slow fake WhatsApp
that reports statuses to the webhook as Meta does.

CI runs the short form; `make reliability` the long one (KILL_BURST_CUSTOMERS, KILL_BURST_KILLS).
"""

import io
import json
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from chatbridge.fakes.whatsapp import StatusWebhook
from rooms.models import Message
from tests.payloads import message, notification, sign, text_from
from tests.servers import AppProcess, post_signed, stop_all, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573008880001"
KILL_BURST_CUSTOMERS = int(os.environ.get("KILL_BURST_CUSTOMERS", "30"))
KILL_BURST_KILLS = int(os.environ.get("KILL_BURST_KILLS", "3"))
# Short leases so that a send lost with its process is taken up within the test's patience.
FAST_RECOVERY = {
    "WHATSAPP_TIMEOUT": "2",
    "WHATSAPP_SEND_ATTEMPTS": "1",  # the longest send is then 4 s: the lease covers it
    "WHATSAPP_SEND_LEASE_SECONDS": "6",
    "WHATSAPP_SEND_GRACE_SECONDS": "2",
    "TURN_RESUME_AFTER_SECONDS": "3",
    "TASK_WORKER_BEAT_SECONDS": "0.5",
    "TASK_WORKER_STALE_SECONDS": "3",
}


def _resume() -> str:
    out = io.StringIO()
    call_command("turns_resume", older_than=0, stdout=out)
    return out.getvalue()


def _statuses_to(whatsapp, server: AppProcess) -> None:
    whatsapp.status_webhook = StatusWebhook(
        url=f"{server.url}/whatsapp/external", app_secret=settings.WHATSAPP_APP_SECRET
    )


def test_worker_killed_while_its_reply_is_in_flight_sends_it_once(
    fake_vendors, whatsapp, watson, settings, record_fault
):
    """The fake answering in 3 s, the worker SIGKILLed during the send, a new worker, recovery:
    the reply went out before its row said so, and recovery sent it again."""
    settings.WHATSAPP_SEND_GRACE_SECONDS = 2  # recovery here: this test's process
    slow = {**FAST_RECOVERY, "WHATSAPP_TIMEOUT": "5", "WHATSAPP_SEND_LEASE_SECONDS": "10"}
    server = AppProcess.daphne(TASKS_BACKEND="database", **slow).start()
    worker = AppProcess.turn_worker(**slow).start()
    replacement = AppProcess.turn_worker(**slow)
    _statuses_to(whatsapp, server)
    try:
        whatsapp.delay = 3
        assert post_signed(server.url, text_from(WA, "¿me oyes?")).status_code == 200
        wait_until(lambda: whatsapp.in_flight, timeout=30, what="the reply's send in flight")
        worker.kill()
        wait_until(lambda: whatsapp.sent_to(WA), timeout=10, what="WhatsApp taking it anyway")
        replacement.start()
        assert "resent 0" in _resume()
        reply = wait_until(
            lambda: Message.objects.filter(direction="out", status="delivered").first(),
            timeout=20,
            what="the status webhook settling the send",
        )
        assert reply.wa_message_id == whatsapp.sent_to(WA)[0]["id"]
        # Past the lease (10 s) and the grace (2 s): settled, so still not sent again.
        time.sleep(max(0.0, reply.created_at.timestamp() + 13 - time.time()))
        assert "resent 0" in _resume()
    finally:
        whatsapp.delay = 0
        stop_all((server, worker, replacement))
    assert [m["text"] for m in whatsapp.sent_to(WA)] == ["Dijiste: ¿me oyes?"]
    record_fault(
        "Task worker SIGKILLed during a slow send (3 s)",
        done="kill while WhatsApp was answering; a new worker; turns_resume twice",
        held="sent once: the send was leased, and WhatsApp's status (our id echoed) settled it",
    )


def _post_all(url: str, payloads: list[dict], posted: dict[str, float]) -> list[int]:
    """POST every payload (8 at a time); `posted` gets each sender's wall-clock time."""
    session_local = threading.local()

    def post(payload: dict) -> int:
        session = getattr(session_local, "session", None)
        if session is None:
            session = session_local.session = requests.Session()
        body = json.dumps(payload).encode()
        sender = payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
        posted[sender] = time.time()
        return session.post(
            f"{url}/whatsapp/external",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(post, payloads))


def test_burst_with_worker_kills_at_random_moments_delivers_everything_once(
    fake_vendors, whatsapp, watson, record_fault
):
    """First-time customers arriving while the worker is SIGKILLed at random moments (and
    restarted), with the periodic job running: every message answered, none twice, no task
    left running."""
    seed = int(os.environ.get("KILL_BURST_SEED", str(random.SystemRandom().randrange(10**6))))
    rng = random.Random(seed)
    server = AppProcess.daphne(TASKS_BACKEND="database", **FAST_RECOVERY).start()
    periodic = AppProcess.manage("periodic", "--every", "1", **FAST_RECOVERY).start()
    workers = [AppProcess.turn_worker(threads=8, **FAST_RECOVERY).start()]
    _statuses_to(whatsapp, server)
    # Slow enough that a kill finds turns inside Watson and sends inside WhatsApp.
    watson.delay = 0.05
    whatsapp.delay = 0.05
    numbers = [f"57301{index:07d}" for index in range(KILL_BURST_CUSTOMERS)]
    payloads = [
        notification(messages=[message(number, f"mensaje {index}", wamid=f"wamid.kill.{index}")])
        for index, number in enumerate(numbers)
    ]
    answers: list[int] = []
    posted: dict[str, float] = {}
    sender = threading.Thread(
        target=lambda: answers.extend(_post_all(server.url, payloads, posted))
    )
    started = time.monotonic()
    sender.start()
    try:
        for _ in range(KILL_BURST_KILLS):
            # A random moment while there is work in flight, not a chosen point.
            time.sleep(rng.uniform(0.3, 2.0))
            workers[-1].kill()
            workers.append(AppProcess.turn_worker(threads=8, **FAST_RECOVERY).start())
        sender.join(timeout=300)

        def settled() -> bool:
            unanswered = Message.objects.filter(direction="in", handled_at=None).exists()
            unsent = Message.objects.filter(
                direction="out", status__in=["pending", "sending"]
            ).exists()
            return not unanswered and not unsent and len(whatsapp.sent) >= len(payloads)

        wait_until(settled, timeout=180, interval=0.5, what="every message answered and sent")
        # A reclaimed task row finishes; nothing is left running for a dead worker.
        wait_until(
            lambda: not DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).exists(),
            timeout=30,
            interval=0.5,
            what="no task row left running",
        )
        elapsed = time.monotonic() - started
    finally:
        watson.delay = whatsapp.delay = 0
        stop_all([server, periodic, *workers])
    assert answers == [200] * len(payloads)
    received = Counter((m["to"], m["text"]) for m in whatsapp.sent)
    expected = {(number, f"Dijiste: mensaje {index}") for index, number in enumerate(numbers)}
    duplicates = sum(count - 1 for count in received.values())
    missing = expected - set(received)
    assert (duplicates, sorted(missing)) == (0, []), f"seed {seed}"
    assert not DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).exists()
    slowest = max(m["at"] - posted[m["to"]] for m in whatsapp.sent)
    record_fault(
        f"Burst: {len(payloads)} first-time customers, worker SIGKILLed {KILL_BURST_KILLS} "
        "times at random moments",
        done=f"kills at random moments during the burst (seed {seed}); periodic job running",
        held="every message answered and sent; duplicates 0; stranded task rows 0",
        figures=f"all settled after {elapsed:.0f} s; slowest reply {slowest:.1f} s",
    )
