"""Settings for copilot. Every environment variable the project reads is read here, and only here."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

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
                "OPTIONS": {"timeout": 20}}
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


DEBUG = env_flag("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production"
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
    "localmodel",
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

SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = 0 if DEBUG else 31536000
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

REST_FRAMEWORK = {
    # Token first: an unauthenticated call is then a 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_RATES": {"messages": os.environ.get("COPILOT_MESSAGE_RATE", "30/minute")},
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chat.api.errors.exception_handler",
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
}

# The model: the local model unless a base URL or a real API key says otherwise.
ANTHROPIC_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL") or None
ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY") or None

COPILOT = {
    # None: the serve command starts the local model and fills this in.
    "ANTHROPIC_BASE_URL": ANTHROPIC_BASE_URL,
    "ANTHROPIC_API_KEY": ANTHROPIC_API_KEY or "local-model-placeholder-key",
    "USE_LOCAL_MODEL": ANTHROPIC_BASE_URL is None and ANTHROPIC_API_KEY is None,
    "MODEL": os.environ.get("COPILOT_MODEL") or "claude-sonnet-5",
    "MODEL_RETRIES": int(os.environ.get("COPILOT_MODEL_RETRIES", "2")),
    "MAX_MESSAGE_CHARS": 100_000,
    "MAX_FRAME_BYTES": 1024 * 1024,
    # (count, seconds) per window: frames per socket, resumes and turns started per user.
    "RATE_LIMITS": {"frames": (60, 1), "resumes": (20, 10), "turns": (20, 60)},
    "MAX_RUNNING_TURNS_PER_USER": 3,
    "HEARTBEAT_SECONDS": 15,
    # A socket or event stream whose client stopped reading: once this much waits for it, the server waits
    # for the client to catch up, and drops the connection if it has not within the grace (chat/backlog.py).
    "MAX_SEND_BACKLOG_BYTES": int(os.environ.get("COPILOT_MAX_SEND_BACKLOG_BYTES", str(4 * 1024 * 1024))),
    "SEND_BACKLOG_GRACE_SECONDS": float(os.environ.get("COPILOT_SEND_BACKLOG_GRACE_SECONDS", "10")),
    "STALE_TURN_SECONDS": 60,
    "STUCK_TOOL_CALL_SECONDS": 600,  # the admin calls a tool call running longer than this "stuck"
    "TOOL_OUTPUT_EVENT_CHARS": 64 * 1024,
    # Deltas of the answer that come faster than this are merged: one frame per window per watcher, not per token.
    "DELTA_WINDOW_MS": int(os.environ.get("COPILOT_DELTA_WINDOW_MS", "50")),
    # The tool policy (chat/engine/policy.py): tools granted beyond the copilot's own and the workspace file tools
    # (e.g. ["Bash"], only for a trusted local install), and what one turn may use.
    "EXTRA_ALLOWED_TOOLS": [],
    "MAX_TOOL_CALLS_PER_TURN": 50,
    "MAX_SUBAGENT_TASKS_PER_TURN": 3,
    "MAX_TURN_SECONDS": 600,
    # The http_get block: the hosts it may fetch ("*.example.com" or "*" admit public addresses only), its limits.
    "HTTP_GET_ALLOWED_HOSTS": [],
    "HTTP_GET_TIMEOUT_SECONDS": 10,
    "HTTP_GET_MAX_BYTES": 1_000_000,
    # Agent runs and builds (agents/): a run whose heartbeat is older than STALE_RUN_SECONDS lost its worker
    # and is marked failed; the worker polls its queue every WORKER_POLL_SECONDS when idle; `serve` starts
    # AGENT_WORKERS worker processes; without Redis the web process hands reports on every REPORT_RELAY_SECONDS.
    "STALE_RUN_SECONDS": float(os.environ.get("COPILOT_STALE_RUN_SECONDS", "30")),
    "RUN_HEARTBEAT_SECONDS": float(os.environ.get("COPILOT_RUN_HEARTBEAT_SECONDS", "2")),
    "WORKER_POLL_SECONDS": float(os.environ.get("COPILOT_WORKER_POLL_SECONDS", "0.2")),
    "AGENT_WORKERS": int(os.environ.get("COPILOT_AGENT_WORKERS", "2")),
    "REPORT_RELAY_SECONDS": 0.5,
    "EVENT_LOG_MAX_EVENTS": 10_000,
    "EVENT_LOG_TTL_SECONDS": 24 * 3600,  # refreshed by every append, so a running turn's events stay
    "REDIS_URL": REDIS_URL,
    "REDIS_PREFIX": os.environ.get("COPILOT_REDIS_PREFIX") or "copilot",  # one per deployment sharing a Redis
    # Every process of one deployment must see the same path: it names the SDK's stored conversations.
    "WORKSPACES_DIR": Path(os.environ.get("COPILOT_WORKSPACES_DIR") or VAR_DIR / "workspaces"),
    "CLI_HOME_DIR": VAR_DIR / "claude-home",
    "SYSTEM_PROMPT": (
        "You are copilot, an assistant that helps people build and run small agents made of blocks. "
        "Use the copilot tools to list blocks and run them, and to create, find and run agents (graphs of blocks); "
        "agent runs go to the background and report back to this chat when they end. Answer briefly."
    ),
}

# Background work (agent runs and builds) goes through Django's tasks framework to a database-backed worker.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["agents"]}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("COPILOT_LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}
