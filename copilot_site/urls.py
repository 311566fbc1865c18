"""The site's URLs: pages, the JSON API, the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("agents.urls")),  # /agents/ pages and /api/agents/, /api/runs/, /api/blocks/
    path("api/", include("chat.api.urls")),
    path("", include("chat.urls")),
]

handler404 = "core.api.errors.not_found"
