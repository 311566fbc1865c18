"""Websocket authentication: a DRF token header, or the Django session cookie with a checked Origin."""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host


def header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, the port made explicit; None when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname.lower(), port


def origin_allowed(scope: dict, origin: bytes) -> bool:
    """Whether a browser page from `origin` may open this socket: the socket's own origin (scheme, host and
    port, with a Host that ALLOWED_HOSTS admits) or one of CSRF_TRUSTED_ORIGINS. As Django's CSRF check does."""
    claimed = origin_of(origin.decode("latin1"))
    if claimed is None:
        return False
    trusted = {origin_of(entry) for entry in settings.CSRF_TRUSTED_ORIGINS}
    if claimed in trusted:
        return True
    host = (header(scope, b"host") or b"").decode("latin1")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return claimed == origin_of(f"{scheme}://{host}")


@database_sync_to_async
def user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    return token.user if token is not None and token.user.is_active else AnonymousUser()


class TokenOrSessionAuthMiddleware:
    """Sets scope["user"]. A cross-site Origin is refused at the handshake; a cookie without Origin is ignored."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.cookie_auth = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        origin = header(scope, b"origin")
        if origin is not None and not origin_allowed(scope, origin):
            return await WebsocketDenier()(scope, receive, send)
        authorization = (header(scope, b"authorization") or b"").decode("latin1")
        if authorization.startswith("Token "):
            user = await user_for_token(authorization.removeprefix("Token ").strip())
            return await self.inner({**scope, "user": user}, receive, send)
        if origin is None:
            # Browsers always send Origin; without it a cookie proves nothing about who opened the socket.
            return await self.inner({**scope, "user": AnonymousUser()}, receive, send)
        return await self.cookie_auth(scope, receive, send)
