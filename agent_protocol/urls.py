"""/ap/v1/agent/: the Agent Protocol v1 (included at the site's root)."""

from django.urls import path

from agent_protocol import views

app_name = "agent_protocol"
urlpatterns = [
    path("ap/v1/agent/tasks", views.tasks, name="tasks"),
    path("ap/v1/agent/tasks/<str:task_id>", views.task_detail, name="task"),
    path("ap/v1/agent/tasks/<str:task_id>/steps", views.steps, name="steps"),
    path("ap/v1/agent/tasks/<str:task_id>/steps/<str:step_id>", views.step_detail, name="step"),
    path("ap/v1/agent/tasks/<str:task_id>/artifacts", views.artifacts, name="artifacts"),
    path("ap/v1/agent/tasks/<str:task_id>/artifacts/<str:artifact_id>", views.artifact_detail, name="artifact"),
]
