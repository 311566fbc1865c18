"""The site's URLs: pages, the JSON API, the admin and its dashboard. (/healthz, /readyz, /metrics: ops.middleware.)"""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("ops.urls")),  # /admin/dashboard/, before the admin's own catch-all
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("agents.urls")),  # /agents/ pages and /api/agents/, /api/runs/, /api/blocks/
    path("", include("agent_protocol.urls")),  # /ap/v1/agent/
    path("api/", include("chat.api.urls")),
    path("", include("chat.urls")),
]

handler404 = "core.api.errors.not_found"
