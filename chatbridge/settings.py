"""chatbridge settings: the only module that reads the environment.

Two shapes share this file. With DEBUG on (the embedded run and the tests) every variable has a
local default: SQLite, a local-memory cache, the in-memory channel layer and development secrets.
With DEBUG off the secrets are required and start-up stops with one line naming the first one
missing. `.env.example` lists every variable.
"""

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent


class _Environment(environ.Env):
    """django-environ, held to the promises of the configuration table."""

    # A variable set to nothing (an unfilled line of .env) counts as unset and gets its default,
    # and values are trimmed. Every `$` is escaped here and restored by escape_proxy: django-environ
    # reads a value that starts with `$` as the name of another variable, and secrets may.
    ENVIRON = {
        name: value.strip().replace("$", r"\$")
        for name, value in os.environ.items()
        if value.strip()
    }

    @classmethod
    def parse_value(cls, value: Any, cast: Any) -> Any:
        # django-environ's float drops every character that is not a digit, a dot, a comma or a
        # minus sign, so `WATSON_TIMEOUT=5m` would read as 5: a number must be written as one.
        if cast is float:
            return float(value)
        return super().parse_value(value, cast)


env = _Environment()
env.escape_proxy = True


def _number(name: str, *, default: float) -> float:
    try:
        return env.float(name, default=default)
    except ValueError:
        sys.exit(f"chatbridge: {name} must be a number, got {env.str(name)!r}")


def _whole_number(name: str, *, default: int) -> int:
    try:
        return env.int(name, default=default)
    except ValueError:
        sys.exit(f"chatbridge: {name} must be a whole number, got {env.str(name)!r}")


def _list(name: str, *, default: str) -> list[str]:
    return [item for item in env.list(name, cast=str.strip, default=default.split(",")) if item]


DEBUG = env.bool("DEBUG", default=False)


def _stop_if_missing(name: str) -> None:
    if not DEBUG and name not in env:
        sys.exit(f"chatbridge: {name} is required when DEBUG is off (see .env.example)")


def _required(name: str, *, development_default: str) -> str:
    """A value production must provide; the embedded run and the tests get a local default."""
    _stop_if_missing(name)
    return env.str(name, default=development_default)


# --- Django -------------------------------------------------------------------------------------

SECRET_KEY = _required(
    "SECRET_KEY", development_default="chatbridge-development-only-secret-key-not-for-production"
)
ALLOWED_HOSTS = _list(
    "ALLOWED_HOSTS", default="localhost,127.0.0.1,[::1],testserver" if DEBUG else ""
)

INSTALLED_APPS = [
    "daphne",
    # Before the admin, so its template overrides (the cache figures on the index) win.
    "chatbridge",
    "chatbridge.apps.ChatbridgeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_tasks",
    "django_tasks_db",
    "chatbridge.worker",
    "axes",
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
    # Where Django puts its LocaleMiddleware: after the session, before CommonMiddleware.
    "chatbridge.middleware.AdminInEnglishLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout found during the login into the lockout page.
    "axes.middleware.AxesMiddleware",
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

# The console and the agents' error messages speak the agent's language (the selector's cookie,
# else the browser's): these two, this one by default. The admin stays in English.
LANGUAGES = [("es", "Español"), ("en", "English")]
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="es").lower()
if LANGUAGE_CODE.split("-")[0] not in dict(LANGUAGES):
    sys.exit(f"chatbridge: LANGUAGE_CODE must be es or en, got {LANGUAGE_CODE!r}")
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise serves from the apps in DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out login is refused before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# The original system's rule, kept by django-axes for every login form (the console's and the
# admin's): LOGIN_ATTEMPTS_LIMIT failed logins from one address lock that address out until
# LOGIN_ATTEMPTS_WINDOW_MINUTES have passed since the last one.
LOGIN_ATTEMPTS_LIMIT = _whole_number("LOGIN_ATTEMPTS_LIMIT", default=5)
LOGIN_ATTEMPTS_WINDOW_MINUTES = _number("LOGIN_ATTEMPTS_WINDOW_MINUTES", default=15)
AXES_FAILURE_LIMIT = LOGIN_ATTEMPTS_LIMIT
AXES_COOLOFF_TIME = dt.timedelta(minutes=LOGIN_ATTEMPTS_WINDOW_MINUTES)
# By address only: an address guessing at any accounts is locked. Never by username alone, which
# would let anyone lock every agent out from anywhere; the address-and-username pair needs no
# count of its own, as under one limit its address's count always reaches the limit first.
# (Agents behind one NAT address share its count.)
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
# Counted in PostgreSQL, so the rule holds with Redis down and across processes.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_CLIENT_IP_CALLABLE = "users.backends.client_ip"
# The login page again, saying why and for how long, instead of axes' bare 429 page.
AXES_LOCKOUT_CALLABLE = "users.backends.login_lockout_response"
# No row per successful login (nothing reads them); failed ones are kept a day for audit
# (users.services.login_failures_prune, run by the periodic job).
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# Behind a proxy that overwrites X-Forwarded-For with the client's address (deploy/nginx.conf),
# a WSGI server sees only the proxy's: the client is the header's last entry. Off by default: a
# client talking to the app directly could write any address there.
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)

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
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes speak plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = _whole_number("SECURE_HSTS_SECONDS", default=30 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "agent-console"
LOGOUT_REDIRECT_URL = "login"

# The cache backend must never hold sessions: with Redis down, cache sessions log everyone out.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# --- PostgreSQL ---------------------------------------------------------------------------------

_stop_if_missing("DATABASE_URL")
DATABASES = {
    "default": {
        **env.db_url(
            "DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'chatbridge.sqlite3'}"
        ),
        "CONN_MAX_AGE": 0,
    }
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's psycopg pool; CONN_MAX_AGE must stay 0 (persistent connections leak under ASGI).
    # Every in-flight request and turn holds one connection, so the pool is sized for them.
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": 1,
            "max_size": _whole_number("DATABASE_POOL_MAX_SIZE", default=20),
            # With PostgreSQL unreachable a request waits this long for a connection, then the
            # webhook answers 503 and WhatsApp delivers again: short, well within Meta's patience.
            "timeout": _number("DATABASE_POOL_TIMEOUT", default=3),
        },
        "connect_timeout": 2,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded run only: IMMEDIATE makes concurrent writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    (BASE_DIR / "var").mkdir(exist_ok=True)

# --- Cache (ADR-012): Redis through django-redis, fail-safe -------------------------------------

_stop_if_missing("REDIS_URL")
REDIS_URL = env.str("REDIS_URL", default="")

# After a Redis failure the cache is skipped for this many seconds, so an outage costs one
# socket timeout per window instead of one per call; then a single probe call tries again.
CACHE_BREAKER_SECONDS = _number("CACHE_BREAKER_SECONDS", default=2.0)

# How often each process adds its hit/miss/error counts to the shared totals.
CACHE_STATS_FLUSH_SECONDS = _number("CACHE_STATS_FLUSH_SECONDS", default=10)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="chatbridge"),
            "OPTIONS": {
                "CLIENT_CLASS": "chatbridge.cache_client.FailSafeRedisClient",
                "IGNORE_EXCEPTIONS": True,
                # redis-py 8 defaults both to 5 s; a cache that slow is worse than none.
                "SOCKET_CONNECT_TIMEOUT": _number("CACHE_CONNECT_TIMEOUT", default=0.25),
                "SOCKET_TIMEOUT": _number("CACHE_SOCKET_TIMEOUT", default=0.5),
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

CHANNELS_REDIS_URL = env.str("CHANNELS_REDIS_URL", default="")
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
                "prefix": env.str("CHANNELS_PREFIX", default="chatbridge"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Background work ----------------------------------------------------------------------------

TASKS_BACKEND = env.str("TASKS_BACKEND", default="immediate")
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
TURN_RESUME_AFTER_SECONDS = _number("TURN_RESUME_AFTER_SECONDS", default=60)

# Each `turn_worker` beats this often; one silent for TASK_WORKER_STALE_SECONDS is dead and its
# running tasks go back to the queue, or fail once workers died TASK_RECLAIM_MAX_RUNS times
# running them (chatbridge/worker/liveness.py).
TASK_WORKER_BEAT_SECONDS = _number("TASK_WORKER_BEAT_SECONDS", default=5)
TASK_WORKER_STALE_SECONDS = _number("TASK_WORKER_STALE_SECONDS", default=30)
TASK_RECLAIM_MAX_RUNS = _whole_number("TASK_RECLAIM_MAX_RUNS", default=3)
if TASK_WORKER_STALE_SECONDS < 3 * TASK_WORKER_BEAT_SECONDS:
    # A live worker that missed a beat or two (a busy machine) must not be taken for dead.
    sys.exit(
        "chatbridge: TASK_WORKER_STALE_SECONDS must be at least 3 times TASK_WORKER_BEAT_SECONDS"
    )
# A message whose turn was resumed this many times without finishing (each run killed its worker,
# or failed) goes to the agents instead of to the bot once more.
TURN_RESUME_MAX = _whole_number("TURN_RESUME_MAX", default=3)

# --- WhatsApp Cloud API -------------------------------------------------------------------------

WHATSAPP_APP_SECRET = _required("WHATSAPP_APP_SECRET", development_default="development-app-secret")
WHATSAPP_VERIFY_TOKEN = _required(
    "WHATSAPP_VERIFY_TOKEN", development_default="development-verify-token"
)
WHATSAPP_TOKEN = _required("WHATSAPP_TOKEN", development_default="development-token")
WHATSAPP_PHONE_NUMBER_ID = _required(
    "WHATSAPP_PHONE_NUMBER_ID", development_default="100000000000001"
)
_whatsapp_api_url = env.str("WHATSAPP_API_URL", default="https://graph.facebook.com/v23.0")
WHATSAPP_API_URL = _whatsapp_api_url.rstrip("/")
WHATSAPP_TIMEOUT = _number("WHATSAPP_TIMEOUT", default=10)
# Attempts for the retryable errors (429, 130429, 131056, 5xx); backoff doubles from the base.
WHATSAPP_SEND_ATTEMPTS = _whole_number("WHATSAPP_SEND_ATTEMPTS", default=3)
WHATSAPP_RETRY_BACKOFF = _number("WHATSAPP_RETRY_BACKOFF", default=0.5)
# A send belongs to the process that started it for this long: longer than the send itself can
# take (every attempt's timeout and the backoffs between them), so nobody else sends it meanwhile.
_send_longest = WHATSAPP_SEND_ATTEMPTS * (
    min(WHATSAPP_TIMEOUT, 3.0) + WHATSAPP_TIMEOUT
) + WHATSAPP_RETRY_BACKOFF * (2 ** max(WHATSAPP_SEND_ATTEMPTS - 1, 0) - 1)
WHATSAPP_SEND_LEASE_SECONDS = _number("WHATSAPP_SEND_LEASE_SECONDS", default=_send_longest + 5)
if _send_longest > WHATSAPP_SEND_LEASE_SECONDS:
    sys.exit(
        f"chatbridge: WHATSAPP_SEND_LEASE_SECONDS must cover the longest send ({_send_longest:g} s:"
        " WHATSAPP_SEND_ATTEMPTS attempts of WHATSAPP_TIMEOUT and their backoffs)"
    )
# A send whose outcome is unknown (its process died, or the answer was lost) is sent again only
# if WhatsApp's status for it (matched by biz_opaque_callback_data) has not come this long after
# its lease ended; at most WHATSAPP_SEND_MAX_TRIES sends in all (README, "Delivery").
# When the bot or an agent is about to answer, the customer's message is marked read (blue ticks)
# and, while Watson thinks or the agent types, the customer sees "typing…" (one call at most per
# message, outside any transaction).
WHATSAPP_READ_MARKS = env.bool("WHATSAPP_READ_MARKS", default=True)
WHATSAPP_TYPING_INDICATOR = env.bool("WHATSAPP_TYPING_INDICATOR", default=True)
WHATSAPP_SEND_GRACE_SECONDS = _number("WHATSAPP_SEND_GRACE_SECONDS", default=60)
# An agent's file going up to WhatsApp (up to 100 MB): each attempt's read timeout. The upload
# runs before the send is claimed, so it needs no lease.
WHATSAPP_UPLOAD_TIMEOUT = _number("WHATSAPP_UPLOAD_TIMEOUT", default=60)
WHATSAPP_SEND_MAX_TRIES = _whole_number("WHATSAPP_SEND_MAX_TRIES", default=3)

# Files customers and agents send (rooms/media/), through Django's storage API: under MEDIA_ROOT
# by default; MEDIA_STORAGE=s3 keeps them in a private S3-compatible bucket (django-storages,
# README "Files"). No URL of the storage is ever shown: people get files only through the
# authenticated view that checks the room (rooms.views.message_file).
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
MEDIA_STORAGE = env.str("MEDIA_STORAGE", default="filesystem")
if MEDIA_STORAGE == "filesystem":
    _media_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": None},
    }
elif MEDIA_STORAGE == "s3":
    _media_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("MEDIA_S3_BUCKET"),
            "endpoint_url": env.str("MEDIA_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("MEDIA_S3_REGION", default="") or None,
            "access_key": env.str("MEDIA_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("MEDIA_S3_SECRET_ACCESS_KEY", default="") or None,
            "location": env.str("MEDIA_S3_PREFIX", default="chatbridge"),
            # Private objects, never overwritten; no public URL is handed out.
            "default_acl": "private",
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
else:
    sys.exit(f"chatbridge: MEDIA_STORAGE must be 'filesystem' or 's3', got {MEDIA_STORAGE!r}")
STORAGES = {
    "default": _media_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Fetching a customer's file: attempts (each resolves the media id again), the backoff before the
# second (doubling), each download's read timeout, and when a silent fetch is taken up again.
MEDIA_FETCH_ATTEMPTS = _whole_number("MEDIA_FETCH_ATTEMPTS", default=3)
MEDIA_FETCH_BACKOFF = _number("MEDIA_FETCH_BACKOFF", default=2)
MEDIA_FETCH_TIMEOUT = _number("MEDIA_FETCH_TIMEOUT", default=60)
MEDIA_FETCH_STALE_SECONDS = _number("MEDIA_FETCH_STALE_SECONDS", default=300)
if MEDIA_FETCH_STALE_SECONDS <= MEDIA_FETCH_TIMEOUT * 2:
    sys.exit("chatbridge: MEDIA_FETCH_STALE_SECONDS must exceed two MEDIA_FETCH_TIMEOUTs")
# Files kept are WhatsApp's types (rooms/whatsapp/client.py MEDIA_KINDS) and these; none larger
# than WhatsApp's limit for its kind, nor than MEDIA_MAX_BYTES.
MEDIA_EXTRA_TYPES = env.list("MEDIA_EXTRA_TYPES", default=[])
MEDIA_MAX_BYTES = _whole_number("MEDIA_MAX_BYTES", default=100 * 1024 * 1024)
# Where a customer's shared location opens ({latitude}, {longitude}).
MAP_LINK = env.str(
    "MAP_LINK",
    default="https://www.openstreetmap.org/?mlat={latitude}&mlon={longitude}#map=17/{latitude}/{longitude}",
)

# --- Twilio's WhatsApp (a second provider; README, "Twilio") ------------------------------------
# Off in production unless TWILIO_ACCOUNT_SID is set; then the rest is required. Sends use the
# WHATSAPP_TIMEOUT, WHATSAPP_SEND_ATTEMPTS and WHATSAPP_RETRY_BACKOFF above, so the send lease
# covers them too.

TWILIO_ACCOUNT_SID = env.str(
    "TWILIO_ACCOUNT_SID", default="AC00000000000000000000000000000000" if DEBUG else ""
)


def _twilio(name: str, *, development_default: str) -> str:
    if TWILIO_ACCOUNT_SID:
        return _required(name, development_default=development_default)
    return ""


# Signs every webhook Twilio sends (X-Twilio-Signature) and authenticates every call to Twilio.
TWILIO_AUTH_TOKEN = _twilio("TWILIO_AUTH_TOKEN", development_default="development-auth-token")
TWILIO_WHATSAPP_FROM = _twilio("TWILIO_WHATSAPP_FROM", development_default="whatsapp:+14155238886")
# The public address Twilio calls, up to where chatbridge's own paths begin: the signature is
# checked against it, never against the request's Host (behind the proxy, an internal name).
TWILIO_WEBHOOK_BASE_URL = _twilio(
    "TWILIO_WEBHOOK_BASE_URL", development_default="http://127.0.0.1:8000"
).rstrip("/")
_twilio_api_url = env.str(
    "TWILIO_API_URL", default="http://127.0.0.1:8083" if DEBUG else "https://api.twilio.com"
)
TWILIO_API_URL = _twilio_api_url.rstrip("/")

# A message whose WhatsApp timestamp is older than this (a delivery held back by an outage, or a
# replayed payload) is stored and handed to the agents instead of being answered by the bot.
WEBHOOK_MAX_AGE_SECONDS = _number("WEBHOOK_MAX_AGE_SECONDS", default=3600)

# Meta sends payloads of up to 3 MB; anything larger is not Meta.
WEBHOOK_MAX_BODY_BYTES = _whole_number("WEBHOOK_MAX_BODY_BYTES", default=3 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES

# --- Watson Assistant ---------------------------------------------------------------------------
# ASSISTANT_URL, ASSISTANT_AUTH_TYPE, ASSISTANT_APIKEY, ASSISTANT_BEARER_TOKEN and
# ASSISTANT_AUTH_URL are read by the ibm-watson SDK itself.

# Checked here only so that start-up stops on a missing credential, as for the other secrets.
_assistant_auth_type = env.str("ASSISTANT_AUTH_TYPE", default="iam").lower()
if _assistant_auth_type == "iam":
    _stop_if_missing("ASSISTANT_APIKEY")
elif _assistant_auth_type == "bearertoken":
    _stop_if_missing("ASSISTANT_BEARER_TOKEN")

WATSON_ASSISTANT_ID = _required("WATSON_ASSISTANT_ID", development_default="development-assistant")
WATSON_ENVIRONMENT_ID = _required(
    "WATSON_ENVIRONMENT_ID", development_default="development-environment"
)
WATSON_VERSION = env.str("WATSON_VERSION", default="2024-08-25")
# The assistant's inactivity timeout: 5 min on Lite and Trial, 1 h by default on Plus.
WATSON_SESSION_TIMEOUT = _whole_number("WATSON_SESSION_TIMEOUT", default=3600)
# RN-062 of the original system: Watson gets 10 s, then the customer gets the apology.
WATSON_TIMEOUT = _number("WATSON_TIMEOUT", default=10)

# --- What the customer reads --------------------------------------------------------------------

BOT_TEXT_ONLY_MESSAGE = env.str(
    "BOT_TEXT_ONLY_MESSAGE",
    default="Por ahora solo puedo leer mensajes de texto. ¿Me escribes tu consulta?",
)
BOT_APOLOGY_MESSAGE = env.str(
    "BOT_APOLOGY_MESSAGE",
    default=(
        "Tenemos problemas técnicos en este momento. Un asesor continuará la conversación contigo."
    ),
)
# When Watson's answer has nothing a WhatsApp customer can read (user_defined, a response type
# chatbridge does not know): "fallback" sends BOT_FALLBACK_MESSAGE, "handoff" passes to a person.
BOT_UNREADABLE_REPLY = env.str("BOT_UNREADABLE_REPLY", default="fallback")
if BOT_UNREADABLE_REPLY not in ("fallback", "handoff"):
    sys.exit("chatbridge: BOT_UNREADABLE_REPLY must be 'fallback' or 'handoff'")
BOT_FALLBACK_MESSAGE = env.str(
    "BOT_FALLBACK_MESSAGE",
    default=(
        "No tengo una respuesta que pueda mostrarte por aquí. ¿Me lo dices de otra forma? "
        "Si prefieres hablar con un asesor, escribe «agente»."
    ),
)
HANDOFF_MESSAGE = env.str(
    "HANDOFF_MESSAGE", default="Te comunico con un asesor. Por favor espera un momento."
)
# A short message made of one of these words asks for a human without going through the bot.
HANDOFF_KEYWORDS = _list("HANDOFF_KEYWORDS", default="agente,asesor,agent,humano,human")

# --- Agents ------------------------------------------------------------------------------------

# Queued rooms go to the least-loaded online agent with free capacity as soon as possible.
AUTO_ASSIGN = env.bool("AUTO_ASSIGN", default=True)
# A console refreshes its agent's presence every PRESENCE_HEARTBEAT_SECONDS; an agent not seen
# for PRESENCE_TIMEOUT_SECONDS (a crashed browser or server) is offline.
PRESENCE_HEARTBEAT_SECONDS = _number("PRESENCE_HEARTBEAT_SECONDS", default=30)
PRESENCE_TIMEOUT_SECONDS = _number("PRESENCE_TIMEOUT_SECONDS", default=90)
# A console looks again at its session this often (and when it expires): what no signal reports
# (a password changed elsewhere, a session deleted in bulk) closes it within this time.
SESSION_RECHECK_SECONDS = _number("SESSION_RECHECK_SECONDS", default=60)
QUEUE_VIEW_LIMIT = 200
# A room whose customer has not answered for this long is closed (RN-064 of the original).
ROOM_INACTIVITY_MINUTES = _number("ROOM_INACTIVITY_MINUTES", default=7)
# Supervisors are alerted, once per room and cause, about a room waiting in the queue longer than
# this, and a customer in an agent's room unanswered longer than this (0: never).
QUEUE_ALERT_MINUTES = _number("QUEUE_ALERT_MINUTES", default=10)
AGENT_REPLY_ALERT_MINUTES = _number("AGENT_REPLY_ALERT_MINUTES", default=5)
# Alerts also go by e-mail to the addresses operators keep in the admin (Alert recipients):
# Django's e-mail backend; the embedded run prints them (console backend).
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = _whole_number("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = _number("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="chatbridge@localhost")
# How agents see a customer's number: "full" (+573001234567) or "masked" (…4567). Logs always
# mask it.
AGENT_NUMBER_DISPLAY = env.str("AGENT_NUMBER_DISPLAY", default="full")
if AGENT_NUMBER_DISPLAY not in ("full", "masked"):
    sys.exit(
        f"chatbridge: AGENT_NUMBER_DISPLAY must be full or masked, got {AGENT_NUMBER_DISPLAY!r}"
    )
# After an agent's template (sent because the customer's 24 hours had passed), the room waits
# this long for the answer before inactivity may close it.
TEMPLATE_REPLY_HOURS = _number("TEMPLATE_REPLY_HOURS", default=24)
# "07:00-22:00" closes open rooms outside those hours (in BUSINESS_TIMEZONE); empty: always open.
BUSINESS_HOURS = env.str("BUSINESS_HOURS", default="")
BUSINESS_TIMEZONE = env.str("BUSINESS_TIMEZONE", default="America/Bogota")
# Outside BUSINESS_HOURS the bot keeps answering; a customer handed to agents is told the hours
# ({opens}, {closes}) and either waits in the queue for the morning ("queue") or is asked to
# write again then and the room closed ("close"). Agents finish the rooms they have.
OUT_OF_HOURS = env.str("OUT_OF_HOURS", default="queue")
if OUT_OF_HOURS not in ("queue", "close"):
    sys.exit(f"chatbridge: OUT_OF_HOURS must be queue or close, got {OUT_OF_HOURS!r}")
OUT_OF_HOURS_QUEUE_MESSAGE = env.str(
    "OUT_OF_HOURS_QUEUE_MESSAGE",
    default=(
        "Nuestros asesores atienden de {opens} a {closes}. Tu conversación queda en la fila: "
        "te responderemos apenas abramos."
    ),
)
OUT_OF_HOURS_CLOSE_MESSAGE = env.str(
    "OUT_OF_HOURS_CLOSE_MESSAGE",
    default="Nuestros asesores atienden de {opens} a {closes}. Escríbenos de nuevo en ese horario.",
)
ROOM_CLOSED_MESSAGE = env.str(
    "ROOM_CLOSED_MESSAGE",
    default=(
        "Gracias por escribirnos. Cerramos esta conversación; si necesitas algo más, escríbenos."
    ),
)
# The post-close survey (rooms/conversation/survey.py): after a room an agent had is closed by a
# person or by inactivity, never by schedule; with SURVEY_BOT_ROOMS also after the bot's rooms.
# Unanswered for SURVEY_TIMEOUT_MINUTES it ends (answers so far kept). A recommendation below
# SURVEY_LOW_NPS alerts supervisors (0: never; the original used 2).
SURVEY_ENABLED = env.bool("SURVEY_ENABLED", default=True)
SURVEY_BOT_ROOMS = env.bool("SURVEY_BOT_ROOMS", default=False)
SURVEY_TIMEOUT_MINUTES = _number("SURVEY_TIMEOUT_MINUTES", default=30)
SURVEY_LOW_NPS = _whole_number("SURVEY_LOW_NPS", default=2)
SURVEY_NPS_QUESTION = env.str(
    "SURVEY_NPS_QUESTION",
    default=(
        "¿Qué tan probable es que recomiendes este canal a un amigo o colega? "
        "Responde de 0 (nada probable) a 10 (muy probable)."
    ),
)
SURVEY_RESOLVED_QUESTION = env.str(
    "SURVEY_RESOLVED_QUESTION", default="¿Resolvimos lo que necesitabas?"
)
SURVEY_SATISFACTION_QUESTION = env.str(
    "SURVEY_SATISFACTION_QUESTION",
    default=(
        "¿Qué tan satisfecho quedaste con la atención? "
        "De 1 (muy insatisfecho) a 5 (muy satisfecho)."
    ),
)
SURVEY_COMMENT_QUESTION = env.str(
    "SURVEY_COMMENT_QUESTION",
    default="¿Algo más que quieras contarnos? Escríbelo en un mensaje (máximo 250 caracteres).",
)
SURVEY_THANKS_MESSAGE = env.str(
    "SURVEY_THANKS_MESSAGE", default="¡Gracias por tus respuestas! Nos ayudan a atenderte mejor."
)

# --- Observability -------------------------------------------------------------------------------

# Where every process of this host writes its metrics for /metrics to sum (read by
# prometheus-client itself too); unset: each process reports its own.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# With a token, /metrics and /cache/stats answer only `Authorization: Bearer <token>` (how they
# are reached through the proxy); without one, only the internal network should reach them
# (deploy/nginx.conf refuses them without an Authorization header).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Logging ------------------------------------------------------------------------------------

# One JSON object a line (request or task id, room id); `plain` for a person at a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
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
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django_tasks": {"level": "WARNING"},
        "django_tasks_db": {"level": "WARNING"},
        # axes logs every login and every prune at INFO; failures and lockouts are warnings.
        "axes": {"level": "WARNING"},
    },
}
