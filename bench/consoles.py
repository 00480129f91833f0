"""Agent consoles for the fan-out figures: a websocket each, read on a thread that stamps when
each customer message arrives."""

import json
import threading
import time

import websocket


class Console:
    def __init__(self, port: int, cookie: str) -> None:
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/ws/agent/",
            header=[f"Cookie: sessionid={cookie}"],
            origin="http://127.0.0.1",
            timeout=30,
        )
        self.arrived: dict[str, float] = {}  # customer text -> monotonic receipt time
        self.errors: list[float] = []  # receipt times of error frames (the echo baseline)
        self.snapshot = threading.Event()
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.snapshot.wait(15):
            raise TimeoutError("no snapshot")

    def _read(self) -> None:
        try:
            while True:
                raw = self.ws.recv()
                now = time.monotonic()
                frame = json.loads(raw)
                with self.changed:
                    if frame.get("type") == "snapshot":
                        self.snapshot.set()
                    elif frame.get("kind") == "message.new":
                        self.arrived[frame["data"].get("text") or ""] = now
                    elif frame.get("type") == "error":
                        self.errors.append(now)
                    self.changed.notify_all()
        except Exception:  # noqa: BLE001 - closed
            return

    def wait_text(self, text: str, timeout: float = 10) -> float:
        deadline = time.monotonic() + timeout
        with self.changed:
            while text not in self.arrived:
                if not self.changed.wait(deadline - time.monotonic()):
                    raise TimeoutError(text)
            return self.arrived[text]

    def echo_rtt(self) -> float:
        """An unknown frame and the error frame it gets back, through Daphne and the consumer."""
        with self.changed:
            count = len(self.errors)
        started = time.monotonic()
        self.ws.send(json.dumps({"type": "bench-echo"}))
        with self.changed:
            while len(self.errors) == count:
                self.changed.wait(5)
            return self.errors[count] - started

    def close(self) -> None:
        self.ws.close()
