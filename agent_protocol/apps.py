"""The Agent Protocol app."""

from django.apps import AppConfig


class AgentProtocolConfig(AppConfig):
    name = "agent_protocol"
    default_auto_field = "django.db.models.BigAutoField"
