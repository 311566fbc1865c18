"""The staff dashboard (/admin/dashboard/): charts of turns, latencies, tool calls, failures and users over time.

Inside the admin (its login, its look); staff who may view turns see it. The figures reach the page's script as
JSON in the page (`json_script`), so it runs under the site's Content-Security-Policy with no inline code.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from ops.selectors import WINDOWS, dashboard, window_named


def can_see_dashboard(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm("chat.view_turn")


def dashboard_view(request: HttpRequest) -> HttpResponse:
    if not can_see_dashboard(request.user):
        raise PermissionDenied("the dashboard is for staff who may view turns")
    window = window_named(request.GET.get("window"))
    context = {**admin.site.each_context(request), "title": "Dashboard", "subtitle": window.label,
               "window": window, "windows": list(WINDOWS.values()), "figures": dashboard(window)}
    return TemplateResponse(request, "admin/dashboard.html", context)
