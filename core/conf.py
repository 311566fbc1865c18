"""Access to the `COPILOT` settings dict (copilot_site/settings.py), read at call time so tests can override it."""

from typing import Any

from django.conf import settings


def copilot_setting(name: str) -> Any:
    return settings.COPILOT[name]
