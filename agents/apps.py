"""The agents app: blocks, agents and their background runs; it gives the copilot its tools."""

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from agents.copilot_tools import TOOL_NAMES, tools_for
        from chat.engine.tools import register_tools

        register_tools(TOOL_NAMES, tools_for)
