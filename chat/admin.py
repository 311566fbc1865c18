"""Django admin for conversations."""

from django.contrib import admin

from chat.models import ChatSession, Message, ToolCall, Turn


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "created_at", "updated_at"]
    search_fields = ["id", "title", "owner__username"]
    list_select_related = ["owner"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["session", "position", "role", "created_at"]
    list_select_related = ["session"]


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = ["id", "session", "status", "started_at", "heartbeat_at", "finished_at", "process"]
    list_filter = ["status"]
    list_select_related = ["session"]


@admin.register(ToolCall)
class ToolCallAdmin(admin.ModelAdmin):
    list_display = ["name", "tool_use_id", "status", "started_at", "finished_at"]
    list_filter = ["status", "name"]
    search_fields = ["tool_use_id", "name"]
