"""The OpenAPI description of `GET /api/sessions/<id>/stream/`, a plain async view that DRF does not see."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def add_stream_path(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: adds the stream endpoint to the generated schema."""
    json_error = {"application/json": {"schema": ERROR}}
    result.setdefault("paths", {})["/api/sessions/{session_id}/stream/"] = {"get": {
        "operationId": "api_sessions_stream_retrieve",
        "summary": "The session's running turn as Server-Sent Events",
        "description": (
            "The Vercel AI SDK's UI message stream (header `x-vercel-ai-ui-message-stream: v1`): each event is "
            "`id: <seq>` and `data: <chunk JSON>`, a `: keep-alive` comment at least every HEARTBEAT_SECONDS "
            "while idle, and `data: [DONE]` after the turn's `finish`. Without `Last-Event-ID` or `after` it "
            "replays the running turn from its `start`."),
        "tags": ["api"],
        "security": [{"tokenAuth": []}, {"cookieAuth": []}],
        "parameters": [
            {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
            {"name": "after", "in": "query", "required": False,
             "description": "Stream the events after this seq (as `Last-Event-ID`).",
             "schema": {"type": "integer", "minimum": 0}},
            {"name": "Last-Event-ID", "in": "header", "required": False,
             "description": "The seq of the last event received, to resume after it.",
             "schema": {"type": "integer", "minimum": 0}},
        ],
        "responses": {
            "200": {"description": "The turn's events, up to its `finish` and `[DONE]`",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "204": {"description": "No turn is running, and nothing of one after the given seq is left to send"},
            "400": {"description": "`after` / `Last-Event-ID` is not a seq of this session", "content": json_error},
            "401": {"description": "Not authenticated", "content": json_error},
            "404": {"description": "No such session (or another user's)", "content": json_error},
            "405": {"description": "Method not allowed", "content": json_error},
        },
    }}
    return result
