"""Who the customer is, as agents read it: the name follows their WhatsApp profile until an
operator edits it, then the operator's name wins; the number shows as the bank's policy says."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rooms.events import customer_number, room_data
from rooms.models import Room
from tests.payloads import notification, text_from
from users.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573001230001"


def _from(name: str, text: str = "hola") -> dict:
    return notification(
        messages=[text_from(WA, text)["entry"][0]["changes"][0]["value"]["messages"][0]],
        names={WA: name},
    )


def test_the_name_follows_the_profile_until_an_operator_edits_it(post_webhook, admin_client):
    """A later profile name never showed; an operator's edit was overwritten by the next message."""
    post_webhook(_from("Ana"))
    post_webhook(_from("Ana María Pérez"))
    customer = Customer.objects.get()
    assert (customer.name, customer.profile_name) == ("Ana María Pérez", "Ana María Pérez")

    form = {"name": "Ana M. Pérez (tarjeta oro)", "name_edited": "on"}
    assert (
        admin_client.post(f"/admin/users/customer/{customer.pk}/change/", form).status_code == 302
    )
    post_webhook(_from("Ana"))
    customer.refresh_from_db()
    assert (customer.name, customer.name_edited) == ("Ana M. Pérez (tarjeta oro)", True)
    assert customer.profile_name == "Ana"
    assert room_data(Room.objects.select_related("customer").get())["customer"]["name"] == (
        "Ana M. Pérez (tarjeta oro)"
    )

    # Cleared: the name follows WhatsApp again.
    admin_client.post(f"/admin/users/customer/{customer.pk}/change/", {"name": customer.name})
    customer.refresh_from_db()
    assert (customer.name, customer.name_edited) == ("Ana", False)


def test_an_unchanged_profile_name_costs_no_write(post_webhook):
    post_webhook(_from("Ana"))
    post_webhook(_from("Ana", "otra vez"))  # warm
    with CaptureQueriesContext(connection) as queries:
        post_webhook(_from("Ana", "y otra"))
    assert not [q for q in queries.captured_queries if 'UPDATE "users_customer"' in q["sql"]]


def test_agents_see_the_number_as_the_policy_says(settings):
    assert customer_number("573001230001") == "+573001230001"
    assert customer_number("US.13491208655302741918") == "US.13491208655302741918"
    settings.AGENT_NUMBER_DISPLAY = "masked"
    assert customer_number("573001230001") == "…0001"
