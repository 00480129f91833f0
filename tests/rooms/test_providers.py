"""Every provider a customer can write through has its module behind rooms.providers."""

import pytest

from rooms.providers import provider_for
from users.models import Customer


@pytest.mark.parametrize("name", Customer.Provider.values)
def test_every_customer_provider_has_its_provider(name):
    assert provider_for(name).name == name
