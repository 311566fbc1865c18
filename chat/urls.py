"""Page URLs of the chat app."""

from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("", views.session_list, name="sessions"),
    path("sessions/new/", views.session_create, name="session-create"),
    path("sessions/<uuid:session_id>/", views.session_page, name="session"),
    path("sessions/<uuid:session_id>/rename/", views.session_rename, name="session-rename"),
    path("sessions/<uuid:session_id>/delete/", views.session_delete, name="session-delete"),
]
