"""The ops pages: the staff dashboard, inside the admin. (/healthz, /readyz and /metrics: ops.middleware.)"""

from django.contrib import admin
from django.urls import path

from ops.views import dashboard_view

app_name = "ops"
urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="dashboard"),
]
