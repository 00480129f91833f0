"""The WhatsApp Cloud API wire format and client. Knows neither the ORM nor the cache."""
