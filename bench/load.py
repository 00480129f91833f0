"""Load and measurement helpers for bench/run.py: wrk runs, an open-loop sender, percentiles, and
the CPU time of process trees read from /proc."""

import http.client
import os
import queue
import re
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def wrk(url: str, connections: int, seconds: float, bodies: Path | None = None) -> dict:
    """One wrk run (one thread, closed loop). With `bodies`, POSTs them in turn (bench/wrk.lua).
    Returns requests, errors, seconds, p50/p95/p99 (ms), rate, client_cpu (share of one core)
    and cdf: [(percentile, ms)]."""
    env = {**os.environ, "BODIES": str(bodies or "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s"]
    command += ["-s", str(BENCH / "wrk.lua"), url]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"RESULT (.*)", out)
    result = {k: float(v) for k, v in (pair.split("=") for pair in match.group(1).split())}
    result["cdf"] = [(float(p), float(v)) for p, v in re.findall(r"CDF (\S+) (\S+)", out)]  # type: ignore[assignment]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["rate"] = result["requests"] / result["seconds"]
    result["client_cpu"] = cpu / result["seconds"]
    return result


@dataclass
class Sent:
    index: int
    due: float  # monotonic time it was scheduled for
    done: float  # monotonic time the answer was read
    status: int
    wall: float  # wall-clock time it was sent (to compare with the fakes' records)

    @property
    def latency_ms(self) -> float:
        """From when it was due, not when it went out: a late send counts (no coordinated
        omission)."""
        return (self.done - self.due) * 1000


def open_loop(
    host: str, port: int, path: str, requests: list[tuple[str, bytes]], rate: float
) -> tuple[list[Sent], float]:
    """POST `requests` ((signature, body)) at `rate` per second on a fixed schedule, whatever the
    server's pace, from a pool of persistent connections. Returns what was sent and the CPU
    seconds this process spent sending."""
    start = time.monotonic() + 0.2
    due = [start + index / rate for index in range(len(requests))]
    return _send_all(host, port, path, requests, due)


def paired_open_loop(
    host: str, port: int, path: str, requests: list[tuple[str, bytes]], rate: float
) -> tuple[list[Sent], float]:
    """As open_loop, but requests 2k and 2k+1 are due at the same instant: a customer's two
    messages arriving together, on two connections, racing each other into the server."""
    start = time.monotonic() + 0.2
    due = [start + (index // 2) * 2 / rate for index in range(len(requests))]
    return _send_all(host, port, path, requests, due)


def _send_all(
    host: str, port: int, path: str, requests: list[tuple[str, bytes]], due: list[float]
) -> tuple[list[Sent], float]:
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(requests)):
        pending.put(index)
    results: list[Sent | None] = [None] * len(requests)
    cpu_before = time.process_time()

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        while True:
            try:
                index = pending.get_nowait()
            except queue.Empty:
                connection.close()
                return
            wait = due[index] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            signature, body = requests[index]
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
            wall = time.time()
            status = 0
            # A kept-alive connection the server closed while idle fails before any answer:
            # send again on a new one, as HTTP clients do (a message id is stored once anyway).
            for _attempt in range(2):
                try:
                    connection.request("POST", path, body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                    break
                except (OSError, http.client.HTTPException):
                    connection.close()
                    connection = http.client.HTTPConnection(host, port, timeout=30)
            results[index] = Sent(index, due[index], time.monotonic(), status, wall)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for r in results if r is not None], time.process_time() - cpu_before


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes and their live descendants."""
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = (int(fields[11]) + int(fields[12])) / TICK
    total, stack, seen = 0.0, list(pids), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += stats.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total
