"""Helpers shared by the benchmarks: a throw-away PostgreSQL database, Django setup, small statistics."""

from __future__ import annotations

import math
import os
import statistics
from urllib.parse import urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "copilot_bench"


def setup_django_on_bench_database() -> str:
    """Create `copilot_bench` next to DATABASE_URL's database if needed, point Django at it, migrate it.

    Must run before anything imports Django models. Returns the database URL used.
    """
    import psycopg

    base = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    if base.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise SystemExit(f"DATABASE_URL must be a PostgreSQL URL for this benchmark, not {base.scheme}://")
    # CREATE DATABASE cannot run in a transaction: autocommit on the server's existing database.
    with psycopg.connect(urlunsplit(base._replace(scheme="postgresql")), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    bench_url = urlunsplit(base._replace(path=f"/{BENCH_DATABASE}"))
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_site.settings")
    os.environ.setdefault("COPILOT_LOG_LEVEL", "WARNING")  # keep the engine's INFO lines out of the figures
    os.environ.setdefault("DJANGO_DEBUG", "0")  # as in production: no debug cursor recording every query

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return bench_url


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1)."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)
