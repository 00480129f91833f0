"""chatbridge's task queue against Procrastinate's, on this machine, in one run
(`make bench-queues`, into docs/TASK-QUEUE.md).

    .venv/bin/python bench/task_queues.py [--rounds 3] [--tasks 2000] [--concurrency 16]

A   chatbridge's queue: django-tasks-db's row, the NOTIFY trigger of rooms migration 0004, and
    `manage.py turn_worker --threads N` (chatbridge.worker.runner.worker_run).
B   Procrastinate 3 through its Django app (`procrastinate.contrib.django`): `defer` on Django's
    connection, its own worker (`manage.py procrastinate worker --concurrency N`), sync tasks.
B'  B's worker with its event loop's default executor given N threads (`--procrastinate-worker`
    below): Procrastinate runs a sync task in that executor, whose default size is
    min(32, cores + 4) threads whatever `--concurrency` says.

Everything runs against the machine's PostgreSQL in a `chatbridge_queuebench` database made for
the run (chatbridge's and Procrastinate's migrations) and dropped at the end; the workers are
subprocesses, so their CPU (and that of their PostgreSQL sessions, told apart by PGAPPNAME) is
read from /proc. The tasks (bench/queue_tasks.py) write their start and end to a file. Each round
measures every figure for every queue, interleaved or alternating, so the ratios B/A come from
the same minutes of the same machine; the report gives them with their range over the rounds.

Prints a Markdown report on stdout.
"""

import argparse
import asyncio
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import TICK, percentile  # noqa: E402

DB_NAME = "chatbridge_queuebench"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
MESSAGE_TABLE = "queuebench_message"  # the small row each enqueue stores with its task
CLIENT_APP = "queuebench-client"
QUEUES = {"A": "default", "B": "b", "B'": "b16"}  # each worker listens to its queue only
BP = "B'"
SLEEP = 0.05  # a Watson call's stand-in
TRACE_LINE = re.compile(r"^F\t\d+\t(Query|Sync)\b", re.MULTILINE)


def bench_env(record: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PG"))},
        "DEBUG": "0",
        "SECRET_KEY": "queuebench-" + "x" * 60,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": "redis://127.0.0.1:6379/15",  # required with DEBUG off; no task uses it
        "WHATSAPP_APP_SECRET": "x",
        "WHATSAPP_VERIFY_TOKEN": "x",
        "WHATSAPP_TOKEN": "x",
        "WHATSAPP_PHONE_NUMBER_ID": "1",
        "ASSISTANT_AUTH_TYPE": "noauth",
        "WATSON_ASSISTANT_ID": "a",
        "WATSON_ENVIRONMENT_ID": "e",
        "TASKS_BACKEND": "database",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "bench.queue_settings",
        "TASK_QUEUES_RECORD": str(record),
        "PGAPPNAME": CLIENT_APP,
    }


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process so far."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True, application_name="queuebench-admin") as conn:
        conn.execute(sql)


# --- the workers ----------------------------------------------------------------------------


class Workers:
    """The three worker processes: started, paused, read and stopped by their pid."""

    def __init__(self, env: dict[str, str], tmp: Path, concurrency: int) -> None:
        self.env, self.tmp, self.concurrency = env, tmp, concurrency
        self.processes: dict[str, subprocess.Popen] = {}

    def start_all(self) -> None:
        n = str(self.concurrency)
        python, manage = sys.executable, "manage.py"
        self._start("A", [python, manage, "turn_worker", "--threads", n, "--queue-name", "default"])
        self._start("B", [python, manage, "procrastinate", "worker", "--concurrency", n, "-q", "b"])
        self._start(
            BP,
            [
                python,
                str(Path(__file__).resolve()),
                "--procrastinate-worker",
                "b16",
                "--concurrency",
                n,
            ],
        )

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.tmp / f"worker-{name.replace(chr(39), 'p')}.log").open("w")
        self.processes[name] = subprocess.Popen(
            args, cwd=ROOT, env={**self.env, "PGAPPNAME": app_name(name)}, stdout=log, stderr=log
        )

    def check(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"worker {name} exited with {process.returncode}: {self.log(name)}"
                )

    def log(self, name: str) -> str:
        return (self.tmp / f"worker-{name.replace(chr(39), 'p')}.log").read_text()[-2000:]

    def cpu(self, name: str) -> float:
        return process_cpu(self.processes[name].pid)

    def pause(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGCONT)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a stopped process holds SIGTERM pending
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def app_name(queue: str) -> str:
    return "queuebench-" + {"A": "a", "B": "b", "B'": "b16"}[queue]


def procrastinate_worker(queue: str, concurrency: int) -> None:
    """B': what `manage.py procrastinate worker` does (the worker's own connector, the app
    opened, `run_worker_async`), with the loop's default executor sized to the concurrency."""
    import django

    django.setup()
    from procrastinate.contrib.django import app

    async def run() -> None:
        executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="job")
        asyncio.get_running_loop().set_default_executor(executor)
        async with app.open_async() as opened:
            await opened.run_worker_async(concurrency=concurrency, queues=[queue])

    with app.replace_connector(app.connector.get_worker_connector()):
        asyncio.run(run())


# --- what the tasks record ------------------------------------------------------------------


class Records:
    """The tasks' lines (label, start, end on CLOCK_MONOTONIC), read as they are appended."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("rb")
        self.rest = b""
        self.lines: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def _read(self) -> None:
        chunk = self.file.read()
        if not chunk:
            return
        *complete, self.rest = (self.rest + chunk).split(b"\n")
        for line in complete:
            label, started, ended = line.decode().split()
            self.lines[label].append((float(started), float(ended)))

    def wait(
        self, label: str, count: int, *, timeout: float, poll: float, workers: Workers
    ) -> list[tuple[float, float]]:
        deadline = time.monotonic() + timeout
        while True:
            self._read()
            if len(self.lines[label]) >= count:
                return self.lines.pop(label)
            if time.monotonic() > deadline:
                workers.check()
                raise TimeoutError(
                    f"{label}: {len(self.lines[label])} of {count} ran in {timeout} s"
                )
            time.sleep(poll)


def backend_cpu(app: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL session whose application_name is `app`."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            [DB_NAME, app],
        )
        pids = [row[0] for row in cursor.fetchall()]
    return {pid: process_cpu(pid) for pid in pids}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """Sessions opened in between count from zero (their start is part of the cost)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# --- the enqueue shapes ---------------------------------------------------------------------


class Shapes:
    """Each way of storing the message row, with or without a task. Built after django.setup()."""

    def __init__(self) -> None:
        from django.db import connection, transaction
        from django_tasks_db.models import DBTaskResult, get_date_max

        from bench.queue_tasks import chatbridge_job, procrastinate_job
        from chatbridge.statements import insert_select, run_statements

        self.connection, self.transaction = connection, transaction
        self.DBTaskResult, self.get_date_max = DBTaskResult, get_date_max
        self.chatbridge_job, self.procrastinate_job = chatbridge_job, procrastinate_job
        self.insert_select, self.run_statements = insert_select, run_statements
        self.serial = 0
        self.message_sql = f"INSERT INTO {MESSAGE_TABLE} (body) VALUES (%s) RETURNING id"

    def _body(self) -> str:
        self.serial += 1
        return f"hola, necesito ayuda con mi pedido {self.serial}"

    def _message(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(self.message_sql, [self._body()])
            cursor.fetchone()

    def message_alone(self, **_: object) -> None:
        """The message's INSERT on its own, autocommit: the floor under A's string."""
        self._message()

    def message_alone_atomic(self, **_: object) -> None:
        """The message's INSERT in transaction.atomic(): the floor under B and A (ORM)."""
        with self.transaction.atomic():
            self._message()

    def a_statement(self, *, label: str, sleep: float = 0.0) -> None:
        """A as the webhook enqueues (rooms/inbound/statements.py `warm_store`): the message's
        INSERT and the task row's, built by insert_select from the message's RETURNING, in one
        query string, one implicit transaction."""
        task = self.chatbridge_job
        row = self.DBTaskResult(
            args_kwargs={"args": [], "kwargs": {"label": label, "sleep": sleep, "message_id": 0}},
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            run_after=task.run_after or self.get_date_max(),
            backend_name=task.backend,
        )
        task_insert, task_params = self.insert_select(
            self.DBTaskResult,
            row,
            source="m",
            expressions={
                "args_kwargs": "jsonb_set(%s::jsonb, '{kwargs,message_id}', to_jsonb(m.id))"
            },
        )
        sql = f"WITH m AS ({self.message_sql}), t AS ({task_insert} RETURNING 1) SELECT id FROM m"
        self.run_statements([sql], [self._body(), *task_params])

    def a_orm(self, *, label: str, sleep: float = 0.0) -> None:
        """A through django-tasks-db's public API: Task.enqueue in the message's transaction."""
        with self.transaction.atomic():
            self._message()
            self.chatbridge_job.enqueue(label=label, sleep=sleep)

    def b(self, *, label: str, sleep: float = 0.0, queue: str = "b") -> None:
        """B: Procrastinate's defer in the message's transaction (its Django connector runs on
        Django's connection, so the job commits or rolls back with the message)."""
        with self.transaction.atomic():
            self._message()
            self.procrastinate_job.configure(queue=queue).defer(label=label, sleep=sleep)

    def backlog(self, queue: str, *, label: str, sleep: float, count: int) -> None:
        """`count` tasks committed at once, each by the queue's public enqueue."""
        with self.transaction.atomic():
            if queue == "A":
                for _ in range(count):
                    self.chatbridge_job.enqueue(label=label, sleep=sleep)
            else:
                deferrer = self.procrastinate_job.configure(queue=QUEUES[queue])
                for _ in range(count):
                    deferrer.defer(label=label, sleep=sleep)

    def pending(self, queue: str) -> int:
        with self.connection.cursor() as cursor:
            if queue == "A":
                cursor.execute(
                    "SELECT count(*) FROM django_tasks_database_dbtaskresult"
                    " WHERE status IN ('READY', 'RUNNING')"
                )
            else:
                cursor.execute(
                    "SELECT count(*) FROM procrastinate_jobs"
                    " WHERE queue_name = %s AND status IN ('todo', 'doing')",
                    [QUEUES[queue]],
                )
            return cursor.fetchone()[0]

    def drop_pending(self) -> None:
        """The enqueue samples' tasks, deleted while the workers are paused: none of them runs."""
        with self.connection.cursor() as cursor:
            cursor.execute("DELETE FROM django_tasks_database_dbtaskresult WHERE status = 'READY'")
            cursor.execute("DELETE FROM procrastinate_jobs WHERE status = 'todo'")

    def failed(self) -> tuple[int, int]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM django_tasks_database_dbtaskresult WHERE status = 'FAILED'"
            )
            a = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'")
            return a, cursor.fetchone()[0]

    def round_trips(self, action: Callable[[], None], n: int = 20) -> float:
        """Messages that wait for PostgreSQL's answer (simple Query, or extended-protocol Sync)
        per call, read from libpq's own trace of the connection: BEGIN and COMMIT included."""
        self.connection.ensure_connection()
        pgconn = self.connection.connection.pgconn
        from psycopg import pq

        with tempfile.TemporaryFile() as trace:
            pgconn.trace(trace.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                for _ in range(n):
                    action()
            finally:
                pgconn.untrace()
            trace.seek(0)
            return len(TRACE_LINE.findall(trace.read().decode(errors="replace"))) / n


# --- the run --------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.record = tmp / "tasks.txt"
        self.record.touch()
        self.env = bench_env(self.record)
        self.workers = Workers(self.env, tmp, args.concurrency)
        # (measure, variant) -> round -> values
        self.data: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.round_trip_counts: dict[str, float] = {}
        self.shapes: Shapes | None = None
        self.load_start = os.getloadavg()
        self.started = time.monotonic()

    def setup(self) -> None:
        admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin(f"CREATE DATABASE {DB_NAME}")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True
        )
        os.environ.update(self.env)
        import django

        django.setup()
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE {MESSAGE_TABLE} (id bigserial PRIMARY KEY, body text NOT NULL,"
                " created_at timestamptz NOT NULL DEFAULT now())"
            )
        self.shapes = Shapes()
        self.records = Records(self.record)
        self.workers.start_all()
        for queue in QUEUES:  # ready: listening, pools and threads grown
            self._drain(queue, f"warm-{queue}", sleep=SLEEP, count=4 * self.args.concurrency)

    def teardown(self) -> None:
        try:
            self.workers.stop_all()
            if self.shapes is not None:
                self.shapes.connection.close()
                self.shapes.connection.close_pool()
        finally:
            admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")

    def wait(self, label: str, count: int, *, timeout: float, poll: float) -> list:
        return self.records.wait(label, count, timeout=timeout, poll=poll, workers=self.workers)

    # --- 1. enqueue ---------------------------------------------------------------------------

    def enqueue_round(self, rnd: int) -> None:
        from django.db import connection

        shapes = self.shapes
        cases: dict[str, Callable[..., None]] = {
            "A": shapes.a_statement,
            "A-orm": shapes.a_orm,
            "B": shapes.b,
            "msg": shapes.message_alone,
            "msg-atomic": shapes.message_alone_atomic,
        }
        if not self.round_trip_counts:
            self.workers.pause()
            try:
                for name, action in cases.items():
                    self.round_trip_counts[name] = shapes.round_trips(
                        lambda action=action: action(label="rt")
                    )
            finally:
                shapes.drop_pending()
                self.workers.resume()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        self.workers.pause()  # nothing else on the machine's cores from the queues meanwhile
        try:
            for _ in range(self.args.enqueue_samples):
                order = list(cases.items())
                random.shuffle(order)
                for name, action in order:
                    cpu, db_cpu = time.process_time(), process_cpu(backend)
                    started = time.perf_counter()
                    action(label="enqueue")
                    wall = time.perf_counter() - started
                    self.data["enqueue", name][rnd].append(wall * 1000)
                    self.data["client-cpu", name][rnd].append((time.process_time() - cpu) * 1000)
                    self.data["db-cpu", name][rnd].append((process_cpu(backend) - db_cpu) * 1000)
            # The same without waiting for the disk at commit: what is left is the round trips
            # and the work, which a slow or busy disk otherwise hides.
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")
            try:
                for _ in range(self.args.enqueue_samples):
                    order = list(cases.items())
                    random.shuffle(order)
                    for name, action in order:
                        started = time.perf_counter()
                        action(label="enqueue")
                        wall = time.perf_counter() - started
                        self.data["enqueue-nowait", name][rnd].append(wall * 1000)
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("RESET synchronous_commit")
        finally:
            shapes.drop_pending()
            self.workers.resume()

    # --- 2. wake-up ---------------------------------------------------------------------------

    def wake_round(self, rnd: int) -> None:
        time.sleep(0.5)  # the workers back from the pause, idle on LISTEN
        enqueue = {"A": self.shapes.a_statement, "B": self.shapes.b}
        for index in range(self.args.wake_samples):
            order = ["A", "B"] if index % 2 == 0 else ["B", "A"]
            for queue in order:
                label = f"wake-{queue}-{rnd}-{index}"
                enqueue[queue](label=label)
                committed = time.monotonic()
                [(started, _)] = self.wait(label, 1, timeout=30, poll=0.0005)
                self.data["wake", queue][rnd].append((started - committed) * 1000)
                time.sleep(random.uniform(0.02, 0.04))

    # --- 3 and 4. throughput and CPU ----------------------------------------------------------

    def throughput_round(self, rnd: int) -> None:
        queues = list(QUEUES) if rnd % 2 == 0 else list(reversed(QUEUES))
        for kind, sleep in (("sleep", SLEEP), ("noop", 0.0)):
            for queue in queues:
                rate, cpu, db_cpu = self._drain(queue, f"{kind}-{queue}-{rnd}", sleep=sleep)
                self.data[f"rate-{kind}", queue][rnd].append(rate)
                self.data[f"cpu-{kind}", queue][rnd].append(cpu)
                self.data[f"db-cpu-{kind}", queue][rnd].append(db_cpu)

    def _drain(
        self, queue: str, label: str, *, sleep: float, count: int | None = None
    ) -> tuple[float, float, float]:
        """A backlog of `count` tasks committed at once, drained by the idle worker: tasks per
        second from the commit to the last task's end; worker and PostgreSQL CPU ms per task."""
        count = count or self.args.tasks
        label = label.replace("'", "p")
        cpu, db_cpu = self.workers.cpu(queue), backend_cpu(app_name(queue))
        self.shapes.backlog(queue, label=label, sleep=sleep, count=count)
        committed = time.monotonic()
        lines = self.wait(label, count, timeout=60 + count * max(sleep, 0.01), poll=0.005)
        rate = count / (max(ended for _, ended in lines) - committed)
        while self.shapes.pending(queue):  # the last rows marked done: their cost is counted
            time.sleep(0.02)
        cpu = (self.workers.cpu(queue) - cpu) / count * 1000
        db_cpu = cpu_delta(db_cpu, backend_cpu(app_name(queue))) / count * 1000
        return rate, cpu, db_cpu

    def idle(self, seconds: float = 5.0) -> None:
        before = {q: (self.workers.cpu(q), backend_cpu(app_name(q))) for q in QUEUES}
        time.sleep(seconds)
        for queue, (cpu, db_cpu) in before.items():
            self.data["idle-cpu", queue][0].append((self.workers.cpu(queue) - cpu) / seconds * 1000)
            self.data["idle-db-cpu", queue][0].append(
                cpu_delta(db_cpu, backend_cpu(app_name(queue))) / seconds * 1000
            )

    def run(self) -> None:
        self.idle()
        for rnd in range(self.args.rounds):
            print(f"round {rnd + 1}/{self.args.rounds}", file=sys.stderr, flush=True)
            self.enqueue_round(rnd)
            self.wake_round(rnd)
            self.throughput_round(rnd)
            self.workers.check()
        self.failed = self.shapes.failed()
        self.load_end = os.getloadavg()
        self.elapsed = time.monotonic() - self.started


# --- the report -----------------------------------------------------------------------------


def stat(values: list[float], how: str) -> float:
    if how == "mean":
        return sum(values) / len(values)
    return percentile(values, {"p50": 50, "p95": 95}[how])


class Report:
    def __init__(self, bench: Bench) -> None:
        self.bench, self.data = bench, bench.data

    def value(self, measure: str, variant: str, how: str, rnd: int | None = None) -> float:
        rounds = self.data[measure, variant]
        values = rounds[rnd] if rnd is not None else [v for r in rounds.values() for v in r]
        return stat(values, how)

    def count(self, measure: str, variant: str) -> int:
        return sum(len(v) for v in self.data[measure, variant].values())

    def ratio(self, measure: str, how: str, a: str = "A", b: str = "B") -> str:
        """B/A over all samples, and its range over the rounds."""
        whole = divide(self.value(measure, b, how), self.value(measure, a, how))
        rounds = sorted(self.data[measure, a])
        per_round = [
            divide(self.value(measure, b, how, r), self.value(measure, a, how, r)) for r in rounds
        ]
        if whole is None:
            return "—"
        known = [value for value in per_round if value is not None]
        if len(known) < 2:
            return f"{whole:.2f}"
        return f"{whole:.2f} ({min(known):.2f}–{max(known):.2f})"

    def pair(self, measure: str, variant: str, digits: int = 2) -> str:
        p50, p95 = self.value(measure, variant, "p50"), self.value(measure, variant, "p95")
        return f"{p50:.{digits}f} / {p95:.{digits}f}"

    def print(self) -> None:
        b = self.bench
        args = b.args
        runs = args.rounds
        out = []
        out.append("# Task queues: chatbridge's (A) against Procrastinate (B)\n")
        out.append(
            f"`make bench-queues` (bench/task_queues.py), one run of {b.elapsed / 60:.1f} min on "
            f"{os.cpu_count()} cores; {runs} rounds, each measuring every row for every queue "
            "(enqueues interleaved in random order, wake-ups alternated, backlogs one after the "
            "other in alternating order). Load average (1, 5, 15 min) at the start "
            f"{fmt_load(b.load_start)}, at the end {fmt_load(b.load_end)}.\n"
        )
        out.append(
            "A: django-tasks-db's row + the NOTIFY trigger (rooms migration 0004) + "
            f"`turn_worker --threads {args.concurrency}`. B: Procrastinate's Django app, `defer` "
            f"inside the transaction, `manage.py procrastinate worker --concurrency "
            f"{args.concurrency}`, sync task functions. The message row stands for the "
            "webhook's message: one small INSERT in the same transaction as the task.\n"
        )
        busiest = max(b.load_start[0], b.load_end[0])
        if busiest > (os.cpu_count() or 1):
            out.append(
                f"**The machine was busy**: a 1-minute load of {busiest:.1f} on "
                f"{os.cpu_count()} cores means other work shared the cores throughout, so "
                "absolute times are inflated and noisier than on an idle machine; the ratios "
                "B/A, taken in the same minutes, are the figures to read.\n"
            )
        rt = b.round_trip_counts
        n_enq, n_wake = self.count("enqueue", "A"), self.count("wake", "A")
        lines = [
            "| # | measure | A: chatbridge | B: Procrastinate | B/A (range over rounds) |",
            "|---|---|---|---|---|",
            f"| 1a | enqueue with the message row: round trips (libpq trace) | {rt['A']:.0f} (one string) | {rt['B']:.0f} (BEGIN, INSERT, defer, COMMIT) | {rt['B'] / rt['A']:.2f} |",
            f"| 1b | enqueue with the message row: wall ms p50 / p95 ({n_enq} each) | {self.pair('enqueue', 'A', 3)} | {self.pair('enqueue', 'B', 3)} | p50 {self.ratio('enqueue', 'p50')}; p95 {self.ratio('enqueue', 'p95')} |",
            f"| 1b′ | the same with `synchronous_commit = off` on the enqueuing session (no wait for the disk): wall ms p50 / p95 | {self.pair('enqueue-nowait', 'A', 3)} | {self.pair('enqueue-nowait', 'B', 3)} | p50 {self.ratio('enqueue-nowait', 'p50')}; p95 {self.ratio('enqueue-nowait', 'p95')} |",
            f"| 1c | of which the task: 1b′ p50 minus the message row alone in the same shape, ms | {self.task_part('A', 'msg'):.3f} | {self.task_part('B', 'msg-atomic'):.3f} | {self.extra_ratio()} |",
            f"| 1d | client CPU per enqueue with the message row, ms (mean) | {self.value('client-cpu', 'A', 'mean'):.3f} | {self.value('client-cpu', 'B', 'mean'):.3f} | {self.ratio('client-cpu', 'mean')} |",
            f"| 1e | PostgreSQL CPU per enqueue with the message row, ms (mean of the session's ticks) | {self.value('db-cpu', 'A', 'mean'):.3f} | {self.value('db-cpu', 'B', 'mean'):.3f} | {self.ratio('db-cpu', 'mean')} |",
            f"| 2 | wake-up, commit → task function starts, idle worker on LISTEN: ms p50 / p95 ({n_wake} each) | {self.pair('wake', 'A')} | {self.pair('wake', 'B')} | p50 {self.ratio('wake', 'p50')}; p95 {self.ratio('wake', 'p95')} |",
            f"| 3a | throughput, {args.tasks} tasks × {SLEEP * 1000:.0f} ms sleep, concurrency {args.concurrency}: tasks/s (median of {runs}) | {self.value('rate-sleep', 'A', 'p50'):.0f} | {self.value('rate-sleep', 'B', 'p50'):.0f} | {self.ratio('rate-sleep', 'p50')} |",
            f"| 3b | throughput, {args.tasks} no-op tasks: tasks/s (median of {runs}) | {self.value('rate-noop', 'A', 'p50'):.0f} | {self.value('rate-noop', 'B', 'p50'):.0f} | {self.ratio('rate-noop', 'p50')} |",
            f"| 4a | worker CPU per task, sleep tasks, ms | {self.value('cpu-sleep', 'A', 'p50'):.2f} | {self.value('cpu-sleep', 'B', 'p50'):.2f} | {self.ratio('cpu-sleep', 'p50')} |",
            f"| 4b | worker CPU per task, no-op tasks, ms | {self.value('cpu-noop', 'A', 'p50'):.2f} | {self.value('cpu-noop', 'B', 'p50'):.2f} | {self.ratio('cpu-noop', 'p50')} |",
            f"| 4c | PostgreSQL CPU per task (the worker's sessions), no-op tasks, ms | {self.value('db-cpu-noop', 'A', 'p50'):.2f} | {self.value('db-cpu-noop', 'B', 'p50'):.2f} | {self.ratio('db-cpu-noop', 'p50')} |",
            f"| 4d | idle worker: CPU ms per second (worker / its PostgreSQL sessions), 5 s | {self.value('idle-cpu', 'A', 'mean'):.2f} / {self.value('idle-db-cpu', 'A', 'mean'):.2f} | {self.value('idle-cpu', 'B', 'mean'):.2f} / {self.value('idle-db-cpu', 'B', 'mean'):.2f} | — |",
        ]
        out.append("\n".join(lines) + "\n")
        out.append("Beside them, in the same run:\n")
        variants = [
            "| measure | value | against A |",
            "|---|---|---|",
            f"| A through django-tasks-db's public API (`Task.enqueue` inside the message's `transaction.atomic()`): round trips | {rt['A-orm']:.0f} | {rt['A-orm'] / rt['A']:.2f} |",
            f"| the same: wall ms p50 / p95 | {self.pair('enqueue', 'A-orm', 3)} | p50 {self.ratio('enqueue', 'p50', b='A-orm')} |",
            f"| the same, `synchronous_commit = off`: wall ms p50 / p95 | {self.pair('enqueue-nowait', 'A-orm', 3)} | p50 {self.ratio('enqueue-nowait', 'p50', b='A-orm')} |",
            f"| the same: client CPU ms per enqueue | {self.value('client-cpu', 'A-orm', 'mean'):.3f} | {self.ratio('client-cpu', 'mean', b='A-orm')} |",
            f"| the message row alone, autocommit (A's floor): round trips; wall ms p50 / p95 | {rt['msg']:.0f}; {self.pair('enqueue', 'msg', 3)} (`synchronous_commit = off`: {self.pair('enqueue-nowait', 'msg', 3)}) | p50 {self.ratio('enqueue', 'p50', b='msg')} |",
            f"| the message row alone in `transaction.atomic()` (B's floor): round trips; wall ms p50 / p95 | {rt['msg-atomic']:.0f}; {self.pair('enqueue', 'msg-atomic', 3)} (`synchronous_commit = off`: {self.pair('enqueue-nowait', 'msg-atomic', 3)}) | p50 {self.ratio('enqueue', 'p50', b='msg-atomic')} |",
            f"| B' (B's worker, its loop's default executor given {args.concurrency} threads): {SLEEP * 1000:.0f} ms tasks/s; no-op tasks/s | {self.value('rate-sleep', BP, 'p50'):.0f}; {self.value('rate-noop', BP, 'p50'):.0f} | {self.ratio('rate-sleep', 'p50', b=BP)}; {self.ratio('rate-noop', 'p50', b=BP)} |",
            f"| B': worker CPU ms per task, sleep; no-op | {self.value('cpu-sleep', BP, 'p50'):.2f}; {self.value('cpu-noop', BP, 'p50'):.2f} | {self.ratio('cpu-sleep', 'p50', b=BP)}; {self.ratio('cpu-noop', 'p50', b=BP)} |",
            f"| PostgreSQL CPU per task, sleep tasks (A; B; B') ms | {self.value('db-cpu-sleep', 'A', 'p50'):.2f}; {self.value('db-cpu-sleep', 'B', 'p50'):.2f}; {self.value('db-cpu-sleep', BP, 'p50'):.2f} | B/A {self.ratio('db-cpu-sleep', 'p50')} |",
        ]
        out.append("\n".join(variants) + "\n")
        failed_a, failed_b = b.failed
        out.append(
            f"Failed tasks in the run: A {failed_a}, B and B' {failed_b}. Ratios above 1 mean B "
            "costs more (round trips, ms, CPU) or, on the throughput rows, is faster. CPU is "
            "utime + stime from /proc, in 10 ms ticks: per-enqueue PostgreSQL CPU is a mean of "
            "ticks and coarse. Worker CPU includes everything the process does while it drains "
            "(claims, the task, marking it done, the LISTEN side).\n"
        )
        out.append(self.reading())
        out.append(self.versions())
        print("\n".join(out))

    def task_part(self, shape: str, floor: str) -> float:
        return self.value("enqueue-nowait", shape, "p50") - self.value(
            "enqueue-nowait", floor, "p50"
        )

    def extra_ratio(self) -> str:
        a = self.task_part("A", "msg")
        if a < 0.005:  # A's task costs less than the noise: no ratio worth printing
            return "— (A's part within noise)"
        return f"{self.task_part('B', 'msg-atomic') / a:.2f}"

    def compare(
        self, measure: str, how: str, *, a: str = "A", b: str = "B", higher_is_better: bool = False
    ) -> str:
        """Which of the two does better on this figure, and by how much; "even" within 5 %."""
        va, vb = self.value(measure, a, how), self.value(measure, b, how)
        if min(va, vb) <= 1e-9:
            return f"{a} {va:.3g}, {b} {vb:.3g} (too small to compare)"
        factor = max(va, vb) / min(va, vb)
        if factor < 1.05:
            return f"even, {b}/{a} {vb / va:.2f}"
        a_better = va > vb if higher_is_better else va < vb
        word = "higher" if higher_is_better else "lower"
        return f"{a if a_better else b} {factor:.1f}× {word}"

    def reading(self) -> str:
        rt = self.bench.round_trip_counts
        c = self.bench.args.concurrency
        compare = self.compare
        default_threads = min(32, (os.cpu_count() or 1) + 4)
        figures = (
            f"**Enqueue** with the message row (1a–1e): A {rt['A']:.0f} round trip, B "
            f"{rt['B']:.0f}. Wall time p50: {compare('enqueue', 'p50')}; p95: "
            f"{compare('enqueue', 'p95')}; without the wait for the disk (1b′) p50: "
            f"{compare('enqueue-nowait', 'p50')}, p95: {compare('enqueue-nowait', 'p95')}. "
            f"Task part (1c): A {self.task_part('A', 'msg'):.3f} ms, B "
            f"{self.task_part('B', 'msg-atomic'):.3f} ms. Client CPU: {compare('client-cpu', 'mean')}. "
            f"PostgreSQL CPU: {compare('db-cpu', 'mean')}. Through django-tasks-db's public API "
            f"alone (A-orm, {rt['A-orm']:.0f} round trips, like B), A-orm against B on wall time "
            f"p50: {compare('enqueue', 'p50', a='A-orm')} (without the wait for the disk: "
            f"{compare('enqueue-nowait', 'p50', a='A-orm')}); client CPU: "
            f"{compare('client-cpu', 'mean', a='A-orm')}. "
            f"**Wake-up** (2) p50: {compare('wake', 'p50')}; p95: {compare('wake', 'p95')}. "
            f"**Throughput** with {SLEEP * 1000:.0f} ms tasks (3a): "
            f"{compare('rate-sleep', 'p50', higher_is_better=True)}. B runs its sync tasks in the "
            f"event loop's default executor, {default_threads} threads on this machine whatever "
            f"`--concurrency {c}` says; with a {c}-thread executor (B'), against A: "
            f"{compare('rate-sleep', 'p50', b=BP, higher_is_better=True)}. With no-op tasks "
            f"(3b): {compare('rate-noop', 'p50', higher_is_better=True)} (B' against A: "
            f"{compare('rate-noop', 'p50', b=BP, higher_is_better=True)}). **Worker CPU** per "
            f"task (4a, 4b): {compare('cpu-sleep', 'p50')} on sleep tasks, "
            f"{compare('cpu-noop', 'p50')} on no-op tasks; PostgreSQL CPU per task (4c, no-op): "
            f"{compare('db-cpu-noop', 'p50')}.\n"
        )
        offers = (
            "What the figures do not weigh. Procrastinate has, and chatbridge's queue has not: "
            "per-lock serial execution (`lock=`: jobs sharing a lock run one at a time, in "
            "order), queueing locks (at most one waiting job per key), periodic jobs (cron "
            "schedules deferred by the workers), retries with back-off, job cancellation and "
            "abort, worker heartbeats to find stalled jobs, and a Django admin of jobs and their "
            "events. chatbridge's queue has, and Procrastinate's public API has not: the task row "
            "written by the webhook's own single statement (no round trip of its own, no "
            "BEGIN/COMMIT: `defer` is a statement of its own in an open transaction), and the "
            "claim for all free threads in one statement (Procrastinate fetches one job per "
            "statement). chatbridge does some of the rest in its own code: one turn at a time "
            "per room by the turn's lock (rooms/bot/turns.py), interrupted or lost turns taken "
            "up again by `turns_resume`, timed chores by its periodic job (rooms/periodic.py).\n"
        )
        return "## Reading it\n\n" + figures + "\n" + offers

    def versions(self) -> str:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server = cursor.fetchone()[0]
        from psycopg import pq

        packages = ["Django", "django-tasks", "django-tasks-db", "procrastinate", "psycopg"]
        listed = ", ".join(f"{name} {version(name)}" for name in packages)
        return (
            "## Versions\n\n"
            f"Python {platform.python_version()}, {listed} (libpq {pq.version()}, "
            f"{pq.__impl__}), PostgreSQL {server}; {platform.machine()}, {os.cpu_count()} cores, "
            f"kernel {platform.release()}. Samples: {self.count('enqueue', 'A')} enqueues per "
            f"shape, {self.count('wake', 'A')} wake-ups per queue, {self.bench.args.rounds} "
            f"backlogs of {self.bench.args.tasks} tasks per queue and kind.\n"
        )


def divide(value: float, base: float) -> float | None:
    """None where the base rounds to nothing (CPU ticks that did not fall in a round)."""
    return value / base if base > 1e-9 else None


def fmt_load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--enqueue-samples", type=int, default=300, help="per shape per round")
    parser.add_argument("--wake-samples", type=int, default=100, help="per queue per round")
    parser.add_argument("--procrastinate-worker", metavar="QUEUE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.procrastinate_worker:
        procrastinate_worker(args.procrastinate_worker, args.concurrency)
        return
    # SIGTERM ends the run like Ctrl-C: the workers are stopped and the database dropped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    tmp = Path(tempfile.mkdtemp(prefix="chatbridge-queuebench-"))
    bench = Bench(args, tmp)
    try:
        bench.setup()
        bench.run()
        Report(bench).print()
    except BaseException:
        for name in bench.workers.processes:
            print(f"--- worker {name} log:\n{bench.workers.log(name)}", file=sys.stderr)
        raise
    finally:
        bench.teardown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
