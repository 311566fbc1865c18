"""Websocket authentication: a DRF token header, or the Django session cookie with a checked Origin."""

from __future__ import annotations

from urllib.parse import urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser


def header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def origin_allowed(origin: bytes) -> bool:
    validator = OriginValidator(None, list(settings.ALLOWED_HOSTS))
    return validator.valid_origin(urlparse(origin.decode("latin1")))


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
        if origin is not None and not origin_allowed(origin):
            return await WebsocketDenier()(scope, receive, send)
        authorization = (header(scope, b"authorization") or b"").decode("latin1")
        if authorization.startswith("Token "):
            user = await user_for_token(authorization.removeprefix("Token ").strip())
            return await self.inner({**scope, "user": user}, receive, send)
        if origin is None:
            # Browsers always send Origin; without it a cookie proves nothing about who opened the socket.
            return await self.inner({**scope, "user": AnonymousUser()}, receive, send)
        return await self.cookie_auth(scope, receive, send)
