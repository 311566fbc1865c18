"""Serves `/healthz`, `/readyz` and `/metrics` (PROTOCOL §9) ahead of the rest of the site.

They answer before CommonMiddleware checks the Host header and before a session or a user is read: a load
balancer's probe or a Prometheus scrape addresses a process by its IP, and must not cost a database query for a
session it does not have. Every other request passes on untouched.
"""

from __future__ import annotations

import hmac
import ipaddress

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.api.errors import error_json
from core.conf import copilot_setting
from core.errors import ApplicationError
from ops import metrics, readiness

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
NOT_CACHED = {"Cache-Control": "no-store"}


class Forbidden(ApplicationError):
    code = "forbidden"
    http_status = 403


class MethodNotAllowed(ApplicationError):
    code = "method_not_allowed"
    http_status = 405


def from_loopback(request: HttpRequest) -> bool:
    """A client on this machine, not one a reverse proxy on this machine speaks for."""
    if any(header in request.META for header in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def has_metrics_token(request: HttpRequest) -> bool:
    token = copilot_setting("METRICS_TOKEN")
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"}, headers=NOT_CACHED)


async def readyz(request: HttpRequest) -> HttpResponse:
    checks = await readiness.readiness()
    if readiness.is_ready(checks):
        return JsonResponse({"status": "ok", "checks": checks}, headers=NOT_CACHED)
    return JsonResponse({"status": "unavailable", "checks": checks}, status=503, headers=NOT_CACHED)


async def metrics_view(request: HttpRequest) -> HttpResponse:
    if not (from_loopback(request) or has_metrics_token(request)):
        return error_json(Forbidden("/metrics answers loopback clients, and others with "
                                    "Authorization: Bearer <METRICS_TOKEN>"))
    checks = await readiness.readiness()
    attention = await readiness.attention_counts()
    body = await sync_to_async(metrics.exposition, thread_sensitive=False)(ready=checks, attention=attention)
    return HttpResponse(body, content_type=PROMETHEUS_CONTENT_TYPE, headers=NOT_CACHED)


ENDPOINTS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_view}


class OperationsEndpointsMiddleware:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        endpoint = ENDPOINTS.get(request.path_info)
        if endpoint is None:
            return await self.get_response(request)
        if request.method not in {"GET", "HEAD"}:
            response = error_json(MethodNotAllowed(f"{request.path_info} answers GET only"))
            response["Allow"] = "GET, HEAD"
            return response
        return await endpoint(request)
