"""factory-boy factories for the models tests make most: agents, customers, outbound messages."""

import datetime as dt

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from rooms.events import room_event_record
from rooms.models import Message, Room
from rooms.whatsapp.client import text_body
from users.models import AgentProfile, Customer


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.LazyAttribute(lambda user: user.username.title())
    password = factory.django.Password("secret")


class AgentFactory(UserFactory):
    """A user in the `agents` group, with an agent profile (`capacity` is the profile's)."""

    class Params:
        capacity = 5

    @factory.post_generation
    def agent(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            self.groups.add(Group.objects.get_or_create(name="agents")[0])

    profile = factory.RelatedFactory(
        "tests.factories.AgentProfileFactory",
        factory_related_name="user",
        capacity=factory.SelfAttribute("..capacity"),
    )


class AgentProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgentProfile

    capacity = 5


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    uid = factory.Sequence(lambda n: f"57300{n:07d}")
    wa_id = factory.SelfAttribute("uid")
    name = factory.Sequence(lambda n: f"Cliente {n}")


class OutboundFactory(factory.django.DjangoModelFactory):
    """A message to the customer, stored and not yet sent (pass `room`)."""

    class Meta:
        model = Message

    direction = Message.Direction.OUTBOUND
    author = Message.Author.BOT
    text = "hola"
    payload = factory.LazyAttribute(lambda message: text_body(message.text))
    status = Message.Status.PENDING


def closed_conversation(customer, agent, *texts, days_ago=1, reason="Resuelto"):
    """A conversation that happened: the customer wrote `texts`, `agent` answered, it closed."""
    room = Room.objects.create(customer=customer, status=Room.Status.ASSIGNED, agent=agent)
    for text in texts:
        Message.objects.create(room=room, direction="in", author="customer", text=text, status="")
    Message.objects.create(
        room=room, direction="out", author="agent", agent=agent, text="Con gusto.", status="sent"
    )
    room_event_record(
        room_id=room.pk,
        kind="room.assigned",
        data={"agent": agent.pk, "how": "taken"},
        actor_id=agent.pk,
    )
    room_event_record(
        room_id=room.pk,
        kind="room.closed",
        data={"reason": reason, "by": agent.pk},
        actor_id=agent.pk,
    )
    Room.objects.filter(pk=room.pk).update(
        status=Room.Status.CLOSED,
        closed_at=timezone.now() - dt.timedelta(days=days_ago),
        closed_reason=reason,
    )
    return Room.objects.select_related("customer", "agent").get(pk=room.pk)
