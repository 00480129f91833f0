from dataclasses import asdict, dataclass
from typing import Any

from django.contrib.auth.models import User

from users.models import Customer

AGENTS_GROUP = "agents"


def display_name(user: User) -> str:
    """How the desk names a person (agents, supervisors, operators): their full name, else
    their username."""
    return user.get_full_name() or user.get_username()


# Agents who also watch the whole desk: every area's queue, every agent, every open room.
SUPERVISORS_GROUP = "supervisors"


@dataclass(frozen=True)
class CustomerRef:
    """What a message needs to know about its customer; small enough to cache."""

    id: int
    provider: str
    uid: str
    wa_id: str
    user_id: str
    name: str  # the WhatsApp profile's name as last seen (what a new message is compared with)
    public_id: str

    @classmethod
    def of(cls, customer: Customer) -> "CustomerRef":
        return cls(
            id=customer.pk,
            provider=customer.provider,
            uid=customer.uid,
            wa_id=customer.wa_id,
            user_id=customer.user_id,
            name=customer.profile_name,
            public_id=str(customer.public_id),
        )

    @classmethod
    def from_cache(cls, value: Any) -> "CustomerRef | None":
        try:
            return cls(**value)
        except TypeError:
            return None  # an entry of another shape: treat as a miss

    def to_cache(self) -> dict[str, Any]:
        return asdict(self)
