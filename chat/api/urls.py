"""API URLs."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chat.api import files, stream, views

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("sessions/", views.SessionListView.as_view(), name="api-sessions"),
    path("sessions/<str:session_id>/", views.SessionDetailView.as_view(), name="api-session"),
    path("sessions/<str:session_id>/messages/", views.SessionMessagesView.as_view(), name="api-session-messages"),
    path("sessions/<str:session_id>/messages/<str:message_id>/regenerate/", views.RegenerateView.as_view(),
         name="api-message-regenerate"),
    path("sessions/<str:session_id>/files/", files.SessionFilesView.as_view(), name="api-session-files"),
    path("sessions/<str:session_id>/files/<path:file_path>", files.SessionFileView.as_view(), name="api-session-file"),
    path("sessions/<str:session_id>/export/", views.SessionExportView.as_view(), name="api-session-export"),
    path("sessions/<str:session_id>/stream/", stream.session_stream, name="api-session-stream"),
    path("sessions/<str:session_id>/stop/", views.SessionStopView.as_view(), name="api-session-stop"),
    path("sessions/<str:session_id>/turns/", views.SessionTurnsView.as_view(), name="api-session-turns"),
    path("sessions/<str:session_id>/turns/<str:turn_id>/", views.QueuedTurnView.as_view(), name="api-queued-turn"),
    path("sessions/<str:session_id>/approvals/<str:approval_id>/", views.ApprovalDecisionView.as_view(),
         name="api-approval"),
    path("sessions/<str:session_id>/tool-calls/<str:tool_call_id>/cancel/", views.ToolCallCancelView.as_view(),
         name="api-tool-call-cancel"),
    path("turns/<str:turn_id>/", views.TurnDetailView.as_view(), name="api-turn"),
    path("models/", views.ModelsView.as_view(), name="api-models"),
    path("usage/", views.UsageView.as_view(), name="api-usage"),
]
