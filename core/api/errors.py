"""The one place errors become responses: `{code, message}` for the API (DRF's exception handler, and the
middleware for plain views such as the event stream), Django's own pages for the site's pages."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views.defaults import bad_request, page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError

CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.ParseError: "parse_error",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "invalid",
}


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response(exc.as_json(), status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):
        return Response({"code": "too_large", "message": "the request body is too large"},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("not found")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handling takes over
    code = next((code for kind, code in CODES.items() if isinstance(exc, kind)), "error")
    response.data = {"code": code, "message": flatten(exc.detail)}
    return response


def flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {flatten(value)}" if key != "non_field_errors" else flatten(value)
                         for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(flatten(item) for item in detail)
    return str(detail)


def error_json(error: ApplicationError) -> JsonResponse:
    return JsonResponse(error.as_json(), status=error.http_status)


class ApplicationErrorMiddleware:
    """An ApplicationError a plain view (not DRF's) raises becomes its response: JSON under /api/, a page elsewhere
    (404 for NotFound, the site's 400 page otherwise)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, ApplicationError):
            return None
        if request.path.startswith("/api/"):
            return error_json(exception)
        if exception.http_status == 404:
            return page_not_found(request, Http404(exception.message))
        return bad_request(request, exception)


def not_found(request, exception):
    """404 for any URL: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "message": "not found"}, status=404)
    return page_not_found(request, exception)
