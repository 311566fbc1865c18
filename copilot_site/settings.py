"""Settings for copilot. Every environment variable the project reads is read here, and only here."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("COPILOT_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file, CLI home and workspaces live here


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def database_from_url(url: str) -> dict:
    """A DATABASES entry from `sqlite:///path` or `postgres://user:pass@host:port/name`."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db lives in the project folder; sqlite:////abs/path.db is absolute.
        name = Path(unquote(parts.path)[1:])
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(name if name.is_absolute() else BASE_DIR / name),
                # Writers queue for the lock rather than fail at once; readers never wait for a writer.
                "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE",
                            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}}
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # Reused connections save a connect per write; `./dev test` sets 0 so test databases can be dropped.
            "CONN_MAX_AGE": int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ValueError(f"DATABASE_URL: unsupported scheme {parts.scheme!r} (use sqlite:// or postgres://)")


# Off unless DJANGO_DEBUG=1 (`./dev serve` on loopback sets it). `serve` on a public address refuses to start with
# the development key below: it signs sessions and CSRF tokens.
DEBUG = env_flag("DJANGO_DEBUG", False)
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or DEVELOPMENT_SECRET_KEY
# Served over HTTPS (directly or behind a TLS proxy): secure cookies and HSTS. Default: unless DEBUG.
HTTPS = env_flag("DJANGO_HTTPS", not DEBUG)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks_db",
    "chat",
    "agents",
    "agent_protocol",
    "localmodel",
    "ops",
    "copilot_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.api.errors.ApplicationErrorMiddleware",
]

ROOT_URLCONF = "copilot_site.urls"
ASGI_APPLICATION = "copilot_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, so a daphne process started by the tests shares the test database; one per test run.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL") or None
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_URL]}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # a message is at most MAX_MESSAGE_CHARS; bigger bodies are 413
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serve static files without a collectstatic step

SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_CONTENT_TYPE_NOSNIFF = True

# Content-Security-Policy on every response (Django's own middleware): scripts, styles, fonts and connections from
# this site only (`connect-src 'self'` covers its own ws:/wss: websocket), images from it or data: URLs; no inline
# script or style, no eval, no plugins, no framing, forms post only here.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "django.middleware.csp.ContentSecurityPolicyMiddleware")
# /healthz, /readyz and /metrics answer before anything checks the Host header or reads a session: probes and
# scrapers address a process by its IP.
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.csp.ContentSecurityPolicyMiddleware") + 1,
                  "ops.middleware.OperationsEndpointsMiddleware")

REST_FRAMEWORK = {
    # Token first: an unauthenticated call is then a 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_RATES": {"messages": os.environ.get("COPILOT_MESSAGE_RATE", "30/minute")},
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.UntrustedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "copilot API",
    "DESCRIPTION": "Chat sessions, messages, turns and their events. Errors are {code, message}.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Several models have a `status`: each choice set gets its own component name.
    "ENUM_NAME_OVERRIDES": {"TurnStatusEnum": "chat.models.TurnStatus", "AgentStatusEnum": "agents.models.AgentStatus",
                            "RunStatusEnum": "agents.models.RunStatus", "NodeStatusEnum": "agents.models.NodeStatus"},
    # The docs page works offline: Swagger UI is served from this server, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "chat.api.stream_schema.add_stream_path"],
}

# The model: the local model unless a base URL or a real API key says otherwise.
ANTHROPIC_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL") or None
ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY") or None

# Every value below can be set from the environment as COPILOT_<NAME> (the README's settings table): numbers as
# numbers, lists comma-separated, RATE_LIMITS as "frames=60/1,turns=20/60" (merged over the defaults).
COPILOT_DEFAULTS = {
    "MODEL": "claude-sonnet-5",
    "MODEL_RETRIES": 2,
    "MAX_MESSAGE_CHARS": 100_000,
    "MAX_FRAME_BYTES": 1024 * 1024,
    # (count, seconds) per window: frames per socket, resumes and turns started per user.
    "RATE_LIMITS": {"frames": (60, 1), "resumes": (20, 10), "turns": (20, 60)},
    "MAX_RUNNING_TURNS_PER_USER": 3,  # a user's share of the running slots while others wait
    # Capacity of each process (chat/engine/capacity.py): 0 = from the memory available at start and CLI_RSS_BYTES.
    "MAX_CONCURRENT_TURNS": 0,
    "MAX_WARM_CLIENTS": 0,
    "CLI_RSS_BYTES": 170 * 1024 * 1024,  # what one CLI holds, as measured here
    "WARM_CLIENTS": True,  # keep a session's CLI connected between its turns (chat/engine/warm.py)
    "WARM_IDLE_SECONDS": 300.0,  # …closed after this long with no turn and no open socket
    "STALL_SECONDS": 30.0,  # a turn that hears nothing from the model or a tool this long is `stalled`
    "MAX_QUEUED_TURNS": 5,  # messages waiting for their turn in one chat
    "ASK_BEFORE_TOOLS": [],  # tools whose every call waits for the user's approval, in any approval mode
    "APPROVAL_TIMEOUT_SECONDS": 600.0,  # …denied when nobody decides within this
    # Quotas, so one user cannot starve the others.
    "MAX_SESSIONS_PER_USER": 1_000,
    "MAX_AGENTS_PER_USER": 200,
    "MAX_QUEUED_RUNS_PER_USER": 20,  # agent runs queued or running at once
    "MAX_GRAPH_NODES": 50,
    "MAX_WEBSOCKETS_PER_USER": 50,  # open at once, per server process
    "MAX_WORKSPACE_BYTES": 200 * 1024 * 1024,
    "MAX_UPLOAD_BYTES": 20 * 1024 * 1024,  # one file a person uploads into a workspace
    # Titles of new chats, written after their first turn by one small request to TITLE_MODEL (at most
    # TITLE_MAX_TOKENS, within TITLE_TIMEOUT_SECONDS), else made of the first message's words; "" asks no model.
    "WRITE_TITLES": True,
    "TITLE_MODEL": "claude-haiku-4-5",
    "TITLE_MAX_TOKENS": 30,
    "TITLE_TIMEOUT_SECONDS": 8.0,
    "HEARTBEAT_SECONDS": 15,
    # A socket or event stream whose client stopped reading: once this much waits for it, the server waits
    # for the client to catch up, and drops the connection if it has not within the grace (chat/backlog.py).
    "MAX_SEND_BACKLOG_BYTES": 4 * 1024 * 1024,
    "SEND_BACKLOG_GRACE_SECONDS": 10.0,
    "STALE_TURN_SECONDS": 15.0,  # no heartbeat this long: its process died (heartbeats every 3 s, reaped within 20 s)
    "STUCK_TOOL_CALL_SECONDS": 600.0,  # the admin calls a tool call running longer than this "stuck"
    "TOOL_OUTPUT_EVENT_CHARS": 64 * 1024,
    "TOOL_OUTPUT_STORED_CHARS": 5_000_000,  # what one tool call's output may take in the database
    # Deltas of the answer that come faster than this are merged: one frame per window per watcher, not per token.
    "DELTA_WINDOW_MS": 50,
    # The tool policy (chat/engine/policy.py): tools granted beyond the copilot's own and the workspace file tools
    # (e.g. ["Bash"], only for a trusted local install), and what one turn may use.
    "EXTRA_ALLOWED_TOOLS": [],
    "MAX_TOOL_CALLS_PER_TURN": 50,
    "MAX_SUBAGENT_TASKS_PER_TURN": 3,
    "MAX_TURN_SECONDS": 600.0,
    # The http_get block: the hosts it may fetch ("*.example.com" or "*" admit public addresses only), its limits.
    "HTTP_GET_ALLOWED_HOSTS": [],
    "HTTP_GET_TIMEOUT_SECONDS": 10.0,
    "HTTP_GET_MAX_BYTES": 1_000_000,
    # The most any block's output may be as JSON (agents/blocks: the run_block tool and agent runs alike).
    "BLOCK_MAX_OUTPUT_BYTES": 1_000_000,
    # Agent runs (agents/): a run whose heartbeat is older than STALE_RUN_SECONDS lost its worker and is marked
    # failed; queued work wakes an idle worker at once, which also looks at its queue every WORKER_POLL_SECONDS in
    # case a wake-up was lost; `serve` starts AGENT_WORKERS worker processes.
    "STALE_RUN_SECONDS": 30.0,
    "RUN_HEARTBEAT_SECONDS": 2.0,
    "WORKER_POLL_SECONDS": 5.0,
    "AGENT_WORKERS": 2,
    # Schedules and webhooks (agents/schedules.py, agents/webhooks.py): each worker looks for due schedules every
    # SCHEDULER_SECONDS; a webhook accepts WEBHOOK_RATE_PER_MINUTE requests a minute, signed within
    # WEBHOOK_TOLERANCE_SECONDS of the server's clock.
    "SCHEDULER_SECONDS": 5.0,
    "MAX_SCHEDULES_PER_AGENT": 20,
    "MAX_WEBHOOKS_PER_AGENT": 10,
    "WEBHOOK_RATE_PER_MINUTE": 60,
    "WEBHOOK_TOLERANCE_SECONDS": 300,
    "EVENT_LOG_MAX_EVENTS": 10_000,
    "EVENT_LOG_TTL_SECONDS": 24 * 3600.0,  # refreshed by every append, so a running turn's events stay
    "EVENT_LOG_MEMORY_BYTES": 256 * 1024 * 1024,  # the in-memory log (no Redis) keeps at most this, over all chats
    "REDIS_PREFIX": "copilot",  # one per deployment sharing a Redis
    "BROADCAST": "auto",  # how processes wake each other (core/broadcast.py): auto, postgres, redis or local
    # Every process of one deployment must see the same path: it names the SDK's stored conversations.
    "WORKSPACES_DIR": VAR_DIR / "workspaces",
    "CLI_HOME_DIR": VAR_DIR / "claude-home",
    # Operations (ops/): on SIGTERM /readyz answers 503 for SHUTDOWN_DRAIN_SECONDS before running turns are ended;
    # each readiness check gets READY_CHECK_TIMEOUT_SECONDS; /metrics answers loopback clients, and others that
    # send `Authorization: Bearer <METRICS_TOKEN>` (empty: nobody else). Every process of one machine writes its
    # figures to METRICS_DIR, which /metrics adds up.
    "SHUTDOWN_DRAIN_SECONDS": 3.0,
    "READY_CHECK_TIMEOUT_SECONDS": 2.0,
    "METRICS_TOKEN": "",
    "METRICS_DIR": VAR_DIR / "metrics",
    "SYSTEM_PROMPT": (
        "You are copilot, an assistant that helps people build and run small agents made of blocks. "
        "Use the copilot tools to list blocks and run them, and to find, create and run agents (graphs of blocks): "
        "compose a graph from list_blocks, check it with validate_agent and fix what it names, then create_agent "
        "(find_agent also finds the library's ready agents; install_agent copies one). Agent runs go to the "
        "background and report back to this chat when they end. Answer briefly."
    ),
}


def models_setting(raw: str | None, default_model: str) -> list[dict]:
    """MODELS from COPILOT_MODELS ("id=Label,id=Label"): the entry whose id is MODEL is the default (MODEL is
    added first when no entry has its id)."""
    if raw:
        pairs = [item.partition("=") for item in raw.split(",") if item.strip()]
        entries = [(model_id.strip(), label.strip() or model_id.strip()) for model_id, _, label in pairs]
        if any(not model_id for model_id, _ in entries):
            raise ImproperlyConfigured(f"COPILOT_MODELS={raw!r}: each entry is id=Label")
    else:
        entries = [("claude-sonnet-5", "Claude Sonnet 5"), ("claude-opus-5", "Claude Opus 5"),
                   ("claude-haiku-4-5", "Claude Haiku 4.5")]
    if default_model not in {model_id for model_id, _ in entries}:
        entries.insert(0, (default_model, default_model))
    return [{"id": model_id, "label": label, "default": model_id == default_model} for model_id, label in entries]


def optional_float_setting(name: str) -> float | None:
    raw = os.environ.get(f"COPILOT_{name}")
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"COPILOT_{name}={raw!r} is not a number") from None


def env_setting(name: str, default):
    """COPILOT_<name> from the environment, parsed like `default`; `default` when it is unset."""
    raw = os.environ.get(f"COPILOT_{name}")
    if raw is None or raw == "":
        return default
    try:
        if isinstance(default, bool):
            return env_flag(f"COPILOT_{name}", default)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, list):
            return [item.strip() for item in raw.split(",") if item.strip()]
        if isinstance(default, Path):
            return Path(raw)
        if isinstance(default, dict):  # RATE_LIMITS: "frames=60/1,turns=20/60"
            limits = dict(default)
            for item in raw.split(","):
                kind, _, rate = item.partition("=")
                count, _, seconds = rate.partition("/")
                limits[kind.strip()] = (int(count), float(seconds))
            return limits
    except ValueError:
        raise ImproperlyConfigured(f"COPILOT_{name}={raw!r} is not a valid value like {default!r}") from None
    return raw


COPILOT = {
    **{name: env_setting(name, default) for name, default in COPILOT_DEFAULTS.items()},
    # None: the serve command starts the local model and fills this in.
    "ANTHROPIC_BASE_URL": ANTHROPIC_BASE_URL,
    "ANTHROPIC_API_KEY": ANTHROPIC_API_KEY or "local-model-placeholder-key",
    "USE_LOCAL_MODEL": ANTHROPIC_BASE_URL is None and ANTHROPIC_API_KEY is None,
    "REDIS_URL": REDIS_URL,
    # Traces go over OTLP/HTTP when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or its _TRACES_ variant) is set. The
    # OpenTelemetry SDK and its exporter read the other OTEL_* variables themselves (headers, timeout, sampler,
    # resource attributes, OTEL_SDK_DISABLED): that is their documented configuration.
    "TRACES_ENDPOINT": os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT") or "",
    "SERVICE_NAME": os.environ.get("OTEL_SERVICE_NAME") or "copilot",
    # The models a chat may choose ({id, label, default}; the default is MODEL), and what one user may spend per
    # day (UTC) in US dollars, as the CLI prices the turns (None: no budget).
    "MODELS": models_setting(os.environ.get("COPILOT_MODELS"), env_setting("MODEL", COPILOT_DEFAULTS["MODEL"])),
    "USER_DAILY_BUDGET_USD": optional_float_setting("USER_DAILY_BUDGET_USD"),
}

# prometheus_client's multiprocess mode: the library reads PROMETHEUS_MULTIPROC_DIR itself when it is first imported
# (its documented configuration), so it is set here, before anything imports it. The agents workers `serve` starts
# inherit it and write into the same folder.
COPILOT["METRICS_DIR"].mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(COPILOT["METRICS_DIR"])

# Background work (agent runs and builds) goes through Django's tasks framework to a database-backed worker.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["agents"]}}

# LOG_FORMAT=json: one JSON object per line (time, level, logger, message, and the ids of what it is about, from
# core.log_context); anything else: readable text.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "").strip().lower() or "text"
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use json, or text (the default)")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "ops.logs.JsonFormatter"},
    },
    "filters": {"ids": {"()": "ops.logs.LogContextFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             **({"formatter": "json", "filters": ["ids"]} if LOG_FORMAT == "json"
                                else {"formatter": "plain"})}},
    "root": {"handlers": ["console"], "level": os.environ.get("COPILOT_LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"},
                # DEBUG (with DJANGO_DEBUG=1) logs every SQL statement Django sends.
                "django.db.backends": {"level": os.environ.get("COPILOT_SQL_LOG_LEVEL", "INFO")}},
}
