"""chatbridge settings: the only module that reads the environment.

Two shapes share this file. With DEBUG on (the embedded run and the tests) every variable has a
local default: SQLite, a local-memory cache, the in-memory channel layer and development secrets.
With DEBUG off the secrets are required and start-up stops with one line naming the first one
missing. `.env.example` lists every variable.
"""

import os
import sys
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_bool(name: str, default: bool = False) -> bool:
    value = _env(name)
    if not value:
        return default
    return value.lower() in {"1", "true", "yes", "on"}


def _env_number(name: str, default: float) -> float:
    value = _env(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        sys.exit(f"chatbridge: {name} must be a number, got {value!r}")


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in _env(name, default).split(",") if item.strip()]


DEBUG = _env_bool("DEBUG", False)


def _required(name: str, development_default: str) -> str:
    """A value production must provide; the embedded run and the tests get a local default."""
    value = _env(name)
    if value:
        return value
    if DEBUG:
        return development_default
    sys.exit(f"chatbridge: {name} is required when DEBUG is off (see .env.example)")


# --- Django -------------------------------------------------------------------------------------

SECRET_KEY = _required("SECRET_KEY", "chatbridge-development-only-secret-key-not-for-production")
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver" if DEBUG else "")

INSTALLED_APPS = [
    "daphne",
    # Before the admin, so its template overrides (the cache figures on the index) win.
    "chatbridge",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_tasks",
    "django_tasks_db",
    "users",
    "rooms",
    "watson",
]

MIDDLEWARE = [
    "chatbridge.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "chatbridge.middleware.ContentSecurityPolicyMiddleware",
    # Serves the admin's static files from the app process (Daphne serves none).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatbridge.urls"
WSGI_APPLICATION = "chatbridge.wsgi.application"
ASGI_APPLICATION = "chatbridge.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(_env("STATIC_ROOT") or BASE_DIR / "var" / "static")
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise serves from the apps in DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = ["users.backends.RateLimitedModelBackend"]
# The original system's rule: 5 failed logins per 15 minutes from one address.
LOGIN_ATTEMPTS_LIMIT = int(_env_number("LOGIN_ATTEMPTS_LIMIT", 5))
LOGIN_ATTEMPTS_WINDOW_MINUTES = _env_number("LOGIN_ATTEMPTS_WINDOW_MINUTES", 15)
# Behind a proxy that overwrites X-Forwarded-For with the client's address (deploy/nginx.conf),
# a WSGI server sees only the proxy's: the client is the header's last entry. Off by default: a
# client talking to the app directly could write any address there.
TRUST_X_FORWARDED_FOR = _env_bool("TRUST_X_FORWARDED_FOR", False)

# --- Security headers and cookies (production: DEBUG off, behind a TLS-terminating proxy) --------

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Scripts only from our own files: customer text can never become code in the console.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'"
)
if not DEBUG:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
    # Probes speak plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = int(_env_number("SECURE_HSTS_SECONDS", 30 * 24 * 3600))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD", True)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "agent-console"
LOGOUT_REDIRECT_URL = "login"

# The cache backend must never hold sessions: with Redis down, cache sessions log everyone out.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# --- PostgreSQL ---------------------------------------------------------------------------------

_database_url = _env("DATABASE_URL") or (
    f"sqlite:///{BASE_DIR / 'var' / 'chatbridge.sqlite3'}" if DEBUG else ""
)
if not _database_url:
    sys.exit("chatbridge: DATABASE_URL is required when DEBUG is off (see .env.example)")

DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's psycopg pool; CONN_MAX_AGE must stay 0 (persistent connections leak under ASGI).
    # Every in-flight request and turn holds one connection, so the pool is sized for them.
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": 1,
            "max_size": int(_env_number("DATABASE_POOL_MAX_SIZE", 20)),
            # With PostgreSQL unreachable a request waits this long for a connection, then the
            # webhook answers 503 and WhatsApp delivers again: short, well within Meta's patience.
            "timeout": _env_number("DATABASE_POOL_TIMEOUT", 3),
        },
        "connect_timeout": 2,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded run only: IMMEDIATE makes concurrent writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    (BASE_DIR / "var").mkdir(exist_ok=True)

# --- Cache (ADR-012): Redis through django-redis, fail-safe -------------------------------------

REDIS_URL = _env("REDIS_URL")
if not REDIS_URL and not DEBUG:
    sys.exit("chatbridge: REDIS_URL is required when DEBUG is off (see .env.example)")

# After a Redis failure the cache is skipped for this many seconds, so an outage costs one
# socket timeout per window instead of one per call; then a single probe call tries again.
CACHE_BREAKER_SECONDS = _env_number("CACHE_BREAKER_SECONDS", 2.0)

# How often each process adds its hit/miss/error counts to the shared totals.
CACHE_STATS_FLUSH_SECONDS = _env_number("CACHE_STATS_FLUSH_SECONDS", 10)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": _env("CACHE_KEY_PREFIX", "chatbridge"),
            "OPTIONS": {
                "CLIENT_CLASS": "chatbridge.cache_client.FailSafeRedisClient",
                "IGNORE_EXCEPTIONS": True,
                # redis-py 8 defaults both to 5 s; a cache that slow is worse than none.
                "SOCKET_CONNECT_TIMEOUT": _env_number("CACHE_CONNECT_TIMEOUT", 0.25),
                "SOCKET_TIMEOUT": _env_number("CACHE_SOCKET_TIMEOUT", 0.5),
                # redis-py 8 raises at once past 100 pooled connections; size for the threads.
                "CONNECTION_POOL_KWARGS": {"max_connections": 200},
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Our client logs outages once per breaker window; django-redis would log every ignored call.
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = False

# --- Channels -----------------------------------------------------------------------------------

CHANNELS_REDIS_URL = _env("CHANNELS_REDIS_URL")
if CHANNELS_REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chatbridge.channel_layer.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8's 5 s socket timeout breaks the layer's 5 s BZPOPMIN: stay above it.
                "hosts": [
                    {
                        "address": CHANNELS_REDIS_URL,
                        "socket_timeout": 15,
                        "socket_connect_timeout": 1,
                    }
                ],
                "capacity": 1000,
                "prefix": _env("CHANNELS_PREFIX", "chatbridge"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Background work ----------------------------------------------------------------------------

TASKS_BACKEND = _env("TASKS_BACKEND", "immediate")
TASK_BACKENDS = {
    # The turn runs inside the webhook request, right after the message is committed.
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
    # The turn's task row commits with the message; `manage.py db_worker` processes run it.
    "database": "django_tasks_db.DatabaseBackend",
}
if TASKS_BACKEND not in TASK_BACKENDS:
    sys.exit(f"chatbridge: TASKS_BACKEND must be 'immediate' or 'database', got {TASKS_BACKEND!r}")
TASKS = {"default": {"BACKEND": TASK_BACKENDS[TASKS_BACKEND]}}

# A stored message whose turn has not finished after this long is taken up again by
# `manage.py turns_resume` (its process died, or its task was lost). Longer than the slowest
# honest turn: Watson's timeout twice (one retry on an expired session) plus the sends.
TURN_RESUME_AFTER_SECONDS = _env_number("TURN_RESUME_AFTER_SECONDS", 60)

# --- WhatsApp Cloud API -------------------------------------------------------------------------

WHATSAPP_APP_SECRET = _required("WHATSAPP_APP_SECRET", "development-app-secret")
WHATSAPP_VERIFY_TOKEN = _required("WHATSAPP_VERIFY_TOKEN", "development-verify-token")
WHATSAPP_TOKEN = _required("WHATSAPP_TOKEN", "development-token")
WHATSAPP_PHONE_NUMBER_ID = _required("WHATSAPP_PHONE_NUMBER_ID", "100000000000001")
WHATSAPP_API_URL = _env("WHATSAPP_API_URL", "https://graph.facebook.com/v23.0").rstrip("/")
WHATSAPP_TIMEOUT = _env_number("WHATSAPP_TIMEOUT", 10)
# Attempts for the retryable errors (429, 130429, 131056, 5xx); backoff doubles from the base.
WHATSAPP_SEND_ATTEMPTS = int(_env_number("WHATSAPP_SEND_ATTEMPTS", 3))
WHATSAPP_RETRY_BACKOFF = _env_number("WHATSAPP_RETRY_BACKOFF", 0.5)

# A message whose WhatsApp timestamp is older than this (a delivery held back by an outage, or a
# replayed payload) is stored and handed to the agents instead of being answered by the bot.
WEBHOOK_MAX_AGE_SECONDS = _env_number("WEBHOOK_MAX_AGE_SECONDS", 3600)

# Meta sends payloads of up to 3 MB; anything larger is not Meta.
WEBHOOK_MAX_BODY_BYTES = int(_env_number("WEBHOOK_MAX_BODY_BYTES", 3 * 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES

# --- Watson Assistant ---------------------------------------------------------------------------
# ASSISTANT_URL, ASSISTANT_AUTH_TYPE, ASSISTANT_APIKEY, ASSISTANT_BEARER_TOKEN and
# ASSISTANT_AUTH_URL are read by the ibm-watson SDK itself.

# Checked here only so that start-up stops on a missing credential, as for the other secrets.
if not DEBUG and _env("ASSISTANT_AUTH_TYPE", "iam").lower() == "iam":
    _required("ASSISTANT_APIKEY", "")
elif not DEBUG and _env("ASSISTANT_AUTH_TYPE").lower() == "bearertoken":
    _required("ASSISTANT_BEARER_TOKEN", "")

WATSON_ASSISTANT_ID = _required("WATSON_ASSISTANT_ID", "development-assistant")
WATSON_ENVIRONMENT_ID = _required("WATSON_ENVIRONMENT_ID", "development-environment")
WATSON_VERSION = _env("WATSON_VERSION", "2024-08-25")
# The assistant's inactivity timeout: 5 min on Lite and Trial, 1 h by default on Plus.
WATSON_SESSION_TIMEOUT = int(_env_number("WATSON_SESSION_TIMEOUT", 3600))
# RN-062 of the original system: Watson gets 10 s, then the customer gets the apology.
WATSON_TIMEOUT = _env_number("WATSON_TIMEOUT", 10)

# --- What the customer reads --------------------------------------------------------------------

BOT_TEXT_ONLY_MESSAGE = _env(
    "BOT_TEXT_ONLY_MESSAGE",
    "Por ahora solo puedo leer mensajes de texto. ¿Me escribes tu consulta?",
)
BOT_APOLOGY_MESSAGE = _env(
    "BOT_APOLOGY_MESSAGE",
    "Tenemos problemas técnicos en este momento. Un asesor continuará la conversación contigo.",
)
HANDOFF_MESSAGE = _env("HANDOFF_MESSAGE", "Te comunico con un asesor. Por favor espera un momento.")
# A short message made of one of these words asks for a human without going through the bot.
HANDOFF_KEYWORDS = _env_list("HANDOFF_KEYWORDS", "agente,asesor,agent,humano,human")

# --- Agents ------------------------------------------------------------------------------------

# Queued rooms go to the least-loaded online agent with free capacity as soon as possible.
AUTO_ASSIGN = _env_bool("AUTO_ASSIGN", True)
# A console refreshes its agent's presence every PRESENCE_HEARTBEAT_SECONDS; an agent not seen
# for PRESENCE_TIMEOUT_SECONDS (a crashed browser or server) is offline.
PRESENCE_HEARTBEAT_SECONDS = _env_number("PRESENCE_HEARTBEAT_SECONDS", 30)
PRESENCE_TIMEOUT_SECONDS = _env_number("PRESENCE_TIMEOUT_SECONDS", 90)
QUEUE_VIEW_LIMIT = 200
# A room whose customer has not answered for this long is closed (RN-064 of the original).
ROOM_INACTIVITY_MINUTES = _env_number("ROOM_INACTIVITY_MINUTES", 7)
# "07:00-22:00" closes open rooms outside those hours (in BUSINESS_TIMEZONE); empty: always open.
BUSINESS_HOURS = _env("BUSINESS_HOURS")
BUSINESS_TIMEZONE = _env("BUSINESS_TIMEZONE", "America/Bogota")
ROOM_CLOSED_MESSAGE = _env(
    "ROOM_CLOSED_MESSAGE",
    "Gracias por escribirnos. Cerramos esta conversación; si necesitas algo más, escríbenos.",
)

# --- Observability -------------------------------------------------------------------------------

# Where every process of this host writes its metrics for /metrics to sum (read by
# prometheus-client itself too); unset: each process reports its own.
PROMETHEUS_MULTIPROC_DIR = _env("PROMETHEUS_MULTIPROC_DIR")

# --- Logging ------------------------------------------------------------------------------------

# One JSON object a line (request or task id, room id); `plain` for a person at a terminal.
LOG_FORMAT = _env("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "chatbridge.logs.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
        }
    },
    "root": {"handlers": ["console"], "level": _env("LOG_LEVEL", "INFO")},
    "loggers": {"django_tasks": {"level": "WARNING"}, "django_tasks_db": {"level": "WARNING"}},
}
