"""What every API view shares: pagination and the documented error responses."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework.pagination import PageNumberPagination

from core.api.serializers import ErrorSerializer

ERROR_TEXTS = {
    400: "Bad input", 401: "Not authenticated", 403: "Forbidden", 404: "Not found (or another user's)",
    405: "Method not allowed", 409: "Conflicts with the current state", 413: "Body too large",
    415: "Unsupported media type", 429: "Too many requests",
}


def error_responses(*codes: int, texts: dict[int, str] | None = None) -> dict[int, OpenApiResponse]:
    """The `{code, message}` responses of a view: 401, 403, 404 and 405 always, plus `codes`."""
    texts = {**ERROR_TEXTS, **(texts or {})}
    return {code: OpenApiResponse(ErrorSerializer, description=texts[code]) for code in (401, 403, 404, 405, *codes)}


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
