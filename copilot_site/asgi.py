"""ASGI entry point: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)

from chat.auth import TokenOrSessionAuthMiddleware  # noqa: E402
from chat.backlog import StreamingBacklogMiddleware  # noqa: E402
from chat.lifecycle import attach_to_daphne  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": StreamingBacklogMiddleware(django_asgi_app),
    "websocket": TokenOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns)),
})

attach_to_daphne()
