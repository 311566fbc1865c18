"""The chat app: conversations with the copilot."""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat.engine import observers
        from chat.titles import title_writer

        observers.register(title_writer)  # new chats get a title after their first turn
