"""URLs of agents: the pages under /agents/ and the JSON API under /api/ (included at the site's root)."""

from django.urls import path

from agents import api, views, webhook_views

app_name = "agents"
urlpatterns = [
    path("agents/", views.agent_list, name="list"),
    path("agents/new/", views.agent_new, name="new"),
    path("agents/<uuid:agent_id>/edit/", views.agent_edit, name="edit"),
    path("agents/library/", views.library, name="library"),
    path("agents/library/<slug:slug>/install/", views.library_install, name="library-install"),
    path("agents/<uuid:agent_id>/", views.agent_detail, name="detail"),
    path("agents/<uuid:agent_id>/run/", views.agent_run, name="run"),
    path("agents/runs/<uuid:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("agents/<uuid:agent_id>/schedules/", views.schedule_create, name="schedule-create"),
    path("agents/schedules/<uuid:schedule_id>/delete/", views.schedule_delete, name="schedule-delete"),
    path("agents/<uuid:agent_id>/webhooks/", views.webhook_create, name="webhook-create"),
    path("agents/webhooks/<uuid:webhook_id>/rotate/", views.webhook_rotate, name="webhook-rotate"),
    path("agents/webhooks/<uuid:webhook_id>/revoke/", views.webhook_revoke, name="webhook-revoke"),
    path("api/blocks/", api.BlockListView.as_view(), name="api-blocks"),
    path("api/agents/", api.AgentListView.as_view(), name="api-agents"),
    path("api/agents/validate/", api.ValidateView.as_view(), name="api-validate"),
    path("api/library/", api.LibraryListView.as_view(), name="api-library"),
    path("api/library/<str:slug>/install/", api.LibraryInstallView.as_view(), name="api-library-install"),
    path("api/agents/<str:agent_id>/", api.AgentDetailView.as_view(), name="api-agent"),
    path("api/agents/<str:agent_id>/runs/", api.AgentRunsView.as_view(), name="api-agent-runs"),
    path("api/agents/<str:agent_id>/schedules/", api.AgentSchedulesView.as_view(), name="api-agent-schedules"),
    path("api/schedules/<str:schedule_id>/", api.ScheduleDetailView.as_view(), name="api-schedule"),
    path("api/agents/<str:agent_id>/webhooks/", api.AgentWebhooksView.as_view(), name="api-agent-webhooks"),
    path("api/webhooks/<str:webhook_id>/", api.WebhookDetailView.as_view(), name="api-webhook"),
    path("api/webhooks/<str:webhook_id>/rotate/", api.WebhookRotateView.as_view(), name="api-webhook-rotate"),
    path("api/hooks/<uuid:webhook_id>/", webhook_views.receive, name="webhook-receive"),
    path("api/runs/<str:run_id>/", api.RunDetailView.as_view(), name="api-run"),
    path("api/runs/<str:run_id>/cancel/", api.RunCancelView.as_view(), name="api-run-cancel"),
]
