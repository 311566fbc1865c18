"""The public end of webhooks: `POST /api/hooks/<id>/`, signed instead of logged in (agents.webhooks)."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignedRequest, do_receive
from core.errors import ApplicationError


@csrf_exempt  # signed with the webhook's secret: no cookie, so no cross-site request to forge
@require_POST
def receive(request: HttpRequest, webhook_id) -> JsonResponse:
    try:
        body = request.body
    except RequestDataTooBig:
        return JsonResponse({"code": "too_large", "message": "the request body is too large"}, status=413)
    signed = SignedRequest(timestamp=request.headers.get(TIMESTAMP_HEADER),
                           signature=request.headers.get(SIGNATURE_HEADER), body=body)
    try:
        run = do_receive(webhook_id=webhook_id, request=signed)
    except ApplicationError as exc:
        return JsonResponse(exc.as_json(), status=exc.http_status)
    return JsonResponse({"run_id": str(run.id)}, status=202)
