"""The WhatsApp providers chatbridge speaks to, by their users.Customer.Provider value.

A new provider is one module implementing rooms.providers.base.Provider, a line below, and its
value in users.Customer.Provider.
"""

from rooms.providers.base import Provider
from rooms.providers.meta import MetaProvider
from rooms.providers.twilio import TwilioProvider

_PROVIDERS: dict[str, Provider] = {
    MetaProvider.name: MetaProvider(),
    TwilioProvider.name: TwilioProvider(),
}


def provider_for(name: str) -> Provider:
    """The provider a customer writes through; KeyError for a name chatbridge does not know."""
    return _PROVIDERS[name]
