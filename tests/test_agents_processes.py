"""Agents across real Daphne processes sharing PostgreSQL and the Redis channel layer.

The agents' websockets are real websocket clients (websocket-client) with a session cookie and an
Origin header, as a browser sends them.
"""

import json
import threading
import time
from collections.abc import Iterator

import pytest
import websocket
from django.contrib.auth.models import User
from django.test import Client

from rooms.models import Room
from tests.factories import AgentFactory
from tests.payloads import text_from
from tests.servers import AppProcess, RedisServer, post_signed, start_all, stop_all, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class AgentSocket:
    """A console's websocket; frames are read on a thread into a list."""

    def __init__(self, server: AppProcess, user: User) -> None:
        client = Client()
        client.force_login(user)
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/ws/agent/",
            header=[f"Cookie: sessionid={client.cookies['sessionid'].value}"],
            origin="http://localhost",
            timeout=10,
        )
        self.frames: list[dict] = []
        self.closed = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                self.frames.append(json.loads(self.ws.recv()))
        except Exception:
            self.closed.set()

    def send(self, frame: dict) -> None:
        self.ws.send(json.dumps(frame))

    def wait_for(self, predicate, timeout: float = 10) -> dict:
        return wait_until(
            lambda: next((f for f in self.frames if predicate(f)), None),
            timeout=timeout,
            what="a matching frame",
        )

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def two_servers(fake_vendors) -> Iterator[list[AppProcess]]:
    servers = start_all([AppProcess.daphne(AUTO_ASSIGN="0") for _ in range(2)])
    yield servers
    stop_all(servers)


def test_webhook_on_one_process_reaches_the_agent_on_the_other(two_servers):
    web, console = two_servers
    assert post_signed(web.url, text_from("573001010101", "agente")).status_code == 200
    room = Room.objects.get()
    agent = AgentFactory(username="ana")
    socket = AgentSocket(console, agent)
    socket.wait_for(lambda f: f["type"] == "snapshot")
    socket.send({"type": "take", "room": room.pk})
    socket.wait_for(lambda f: f["type"] == "room")

    started = time.monotonic()
    post_signed(web.url, text_from("573001010101", "¿alguien ahí?"))
    event = socket.wait_for(lambda f: f.get("kind") == "message.new")
    latency = time.monotonic() - started

    assert event["data"]["text"] == "¿alguien ahí?"
    assert latency < 1.0  # "within the same second", whichever process got the webhook
    socket.close()


def _race_for(sockets: list[AgentSocket], rooms: list[int]) -> None:
    """Every socket asks to take each room at the same moment (a barrier per room)."""
    for room_id in rooms:
        barrier = threading.Barrier(len(sockets))

        def take(socket: AgentSocket, room_id: int = room_id, barrier=barrier) -> None:
            barrier.wait()
            socket.send({"type": "take", "room": room_id, "id": f"take-{room_id}"})

        threads = [threading.Thread(target=take, args=(s,)) for s in sockets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _take_answer(socket: AgentSocket, room_id: int) -> dict:
    """The ack or error a socket got for its take of `room_id`."""
    return socket.wait_for(
        lambda f: f.get("id") == f"take-{room_id}" and f["type"] in ("ack", "error")
    )


def test_two_agents_on_two_processes_race_for_rooms_one_wins_each_time(two_servers, record_fault):
    ana, beto = (
        AgentFactory(username="ana", capacity=50),
        AgentFactory(username="beto", capacity=50),
    )
    sockets = [AgentSocket(two_servers[0], ana), AgentSocket(two_servers[1], beto)]
    for socket in sockets:
        socket.wait_for(lambda f: f["type"] == "snapshot")
    rounds = 15
    for index in range(rounds):
        post_signed(two_servers[index % 2].url, text_from(f"57300202{index:04d}", "agente"))
    rooms = list(Room.objects.filter(status="queued").values_list("id", flat=True))
    assert len(rooms) == rounds

    _race_for(sockets, rooms)

    for room_id in rooms:
        results = sorted(_take_answer(socket, room_id)["type"] for socket in sockets)
        assert results == ["ack", "error"], room_id
    owners = Room.objects.filter(pk__in=rooms).values_list("agent_id", flat=True)
    assert None not in owners
    assert len(owners) == rounds
    record_fault(
        "Two agents on two processes take the same room at once",
        done=f"{rounds} rounds, released by a barrier",
        held="exactly one winner each round; the other told not_queued",
        times=rounds,
    )
    for socket in sockets:
        socket.close()


def test_per_area_claims_race_on_two_processes_and_other_areas_never_win(two_servers, record_fault):
    """Two level 2 agents on two processes race for level 2 rooms while a level 1 agent asks
    for each of them too: exactly one level 2 agent wins each, the level 1 agent never."""
    from rooms.models import Area

    level_2 = Area.objects.create(name="Level 2", code="level-2")
    lucia, marco = (
        AgentFactory(username="lucia", capacity=50),
        AgentFactory(username="marco", capacity=50),
    )
    level_2.agents.add(lucia, marco)
    ana = AgentFactory(username="ana", capacity=50)  # level 1 (the default area)
    sockets = [
        AgentSocket(two_servers[0], lucia),
        AgentSocket(two_servers[1], marco),
        AgentSocket(two_servers[0], ana),
    ]
    for socket in sockets:
        socket.wait_for(lambda f: f["type"] == "snapshot")
    rounds = 10
    for index in range(rounds):
        post_signed(
            two_servers[index % 2].url,
            text_from(f"57300303{index:04d}", "necesito un asesor de nivel 2 por favor"),
        )
    rooms = list(Room.objects.filter(status="queued", area=level_2).values_list("id", flat=True))
    assert len(rooms) == rounds

    _race_for(sockets, rooms)

    def outcome(socket: AgentSocket, room_id: int) -> str:
        frame = _take_answer(socket, room_id)
        return frame["type"] if frame["type"] == "ack" else frame["code"]

    for room_id in rooms:
        lucia_got, marco_got, ana_got = (outcome(socket, room_id) for socket in sockets)
        assert sorted([lucia_got, marco_got]) == ["ack", "not_queued"], room_id
        assert ana_got in ("not_your_area", "not_queued"), room_id
    owners = set(Room.objects.filter(pk__in=rooms).values_list("agent_id", flat=True))
    assert owners <= {lucia.pk, marco.pk}
    record_fault(
        "Level 2 rooms raced for by two level 2 agents on two processes and a level 1 agent",
        done=f"{rounds} rounds, three takes released by a barrier each",
        held="exactly one level 2 winner each round; the level 1 agent never got one",
        times=rounds,
    )
    for socket in sockets:
        socket.close()


@pytest.fixture
def layer_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def test_channel_layer_redis_down_then_back_nothing_missed(
    fake_vendors, whatsapp, layer_redis, record_fault
):
    server = AppProcess.daphne(AUTO_ASSIGN="0", CHANNELS_REDIS_URL=layer_redis.url).start()
    try:
        post_signed(server.url, text_from("573003030303", "agente"))
        room = Room.objects.get()
        agent = AgentFactory(username="ana")
        socket = AgentSocket(server, agent)
        socket.wait_for(lambda f: f["type"] == "snapshot")
        socket.send({"type": "take", "room": room.pk})
        detail = socket.wait_for(lambda f: f["type"] == "room")
        last_seq = detail["room"]["seq"]

        layer_redis.stop()
        # The webhook and the bot do not need the channel layer.
        assert post_signed(server.url, text_from("573009090909", "hola")).status_code == 200
        whatsapp.wait_for_sent(1, to="573009090909")
        # A customer message in the agent's room while the layer is down.
        assert (
            post_signed(server.url, text_from("573003030303", "sigo esperando")).status_code == 200
        )
        # The consumer cannot receive without its layer: the socket closes, the console reconnects.
        assert socket.closed.wait(timeout=15)

        layer_redis.start()
        again = wait_until(lambda: _try_connect(server, agent), timeout=20, what="reconnect")
        snapshot = again.wait_for(lambda f: f["type"] == "snapshot")
        assert snapshot["rooms"][0]["seq"] == last_seq + 1
        again.send({"type": "sync", "rooms": {str(room.pk): last_seq}})
        missed = again.wait_for(lambda f: f.get("kind") == "message.new")
        assert missed["data"]["text"] == "sigo esperando"
        again.close()
        record_fault(
            "Channel-layer Redis stopped, then restarted",
            done="an agent connected; customer messages while it was down",
            held="webhook 200 and bot replies throughout; console reconnected; sync returned the"
            " missed message",
        )
    finally:
        server.stop()


def _try_connect(server: AppProcess, agent: User) -> AgentSocket | None:
    try:
        socket = AgentSocket(server, agent)
        socket.wait_for(lambda f: f["type"] == "snapshot", timeout=3)
        return socket
    except Exception:
        return None
