"""Signed webhooks (PROTOCOL §10): make, rotate and revoke a webhook of an agent (`do_*`), and receive a signed
request into a run (`do_receive`).

A request is `POST <url>` with a JSON object (the run's inputs), `X-Copilot-Timestamp: <unix seconds>` and
`X-Copilot-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the secret>`. The signature is
compared in constant time; a timestamp more than WEBHOOK_TOLERANCE_SECONDS off is refused, so a signature need
only be remembered that long to refuse its replay (WebhookDelivery, unique per webhook). Only signed requests
count towards the webhook's WEBHOOK_RATE_PER_MINUTE, so nobody without the secret can use up its rate.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.actions import do_enqueue_run
from agents.graphs import InputsError
from agents.models import Agent, AgentRun, RunTrigger, Webhook, WebhookDelivery
from core.conf import copilot_setting
from core.errors import ApplicationError, BadInput, NotFound, QuotaExceeded
from core.untrusted_json import parse_json

TIMESTAMP_HEADER = "X-Copilot-Timestamp"
SIGNATURE_HEADER = "X-Copilot-Signature"
SIGNATURE = re.compile(r"^sha256=([0-9a-f]{64})$")
TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


class Unsigned(ApplicationError):
    """A request without a valid, fresh signature: nothing about the webhook is told."""

    code = "bad_signature"
    http_status = 401


class Replayed(ApplicationError):
    code = "replayed"
    http_status = 409


class RateLimited(ApplicationError):
    code = "rate_limited"
    http_status = 429


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header's value for a body sent at `timestamp` (what a sender computes)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def do_create_webhook(*, agent: Agent) -> Webhook:
    """A new webhook of the agent with a fresh secret. Raises QuotaExceeded past MAX_WEBHOOKS_PER_AGENT."""
    limit = copilot_setting("MAX_WEBHOOKS_PER_AGENT")
    if agent.webhooks.filter(revoked_at__isnull=True).count() >= limit:
        raise QuotaExceeded(f"the agent has {limit} webhooks, the most allowed: revoke some first",
                            code="too_many_webhooks")
    return Webhook.objects.create(agent=agent, secret=new_secret())


def do_rotate_secret(*, webhook: Webhook) -> Webhook:
    """A new secret; the old one signs nothing from now on."""
    if webhook.revoked_at is not None:
        raise NotFound("no such webhook (it was revoked)")
    webhook.secret, webhook.rotated_at = new_secret(), timezone.now()
    webhook.save(update_fields=["secret", "rotated_at"])
    return webhook


def do_revoke_webhook(*, webhook: Webhook) -> None:
    """Its URL answers 404 from now on."""
    Webhook.objects.filter(pk=webhook.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


@dataclass(frozen=True)
class SignedRequest:
    timestamp: str | None
    signature: str | None
    body: bytes


def _check_signature(webhook: Webhook, request: SignedRequest, now: float) -> str:
    """The request's hex signature, once it is the webhook's and fresh; Unsigned otherwise."""
    if not request.timestamp or not request.signature:
        raise Unsigned(f"sign the request: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required",
                       code="missing_signature")
    if not TIMESTAMP.match(request.timestamp):
        raise Unsigned(f"{TIMESTAMP_HEADER} is the unix time in seconds", code="bad_timestamp")
    tolerance = copilot_setting("WEBHOOK_TOLERANCE_SECONDS")
    if abs(now - int(request.timestamp)) > tolerance:
        raise Unsigned(f"{TIMESTAMP_HEADER} is more than {tolerance} s from the server's time", code="stale_timestamp")
    given = SIGNATURE.match(request.signature.strip())
    expected = sign(webhook.secret, request.timestamp, request.body)[len("sha256="):]
    # Compared in constant time, also when the header is malformed (against a value of the same length).
    if not hmac.compare_digest(expected, given.group(1) if given else "0" * 64) or given is None:
        raise Unsigned(f"{SIGNATURE_HEADER} is not sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\"> under the "
                       "webhook's secret")
    return given.group(1)


def _inputs_of(body: bytes) -> dict[str, Any]:
    try:
        inputs = parse_json(body) if body.strip() else {}
    except BadInput as exc:
        raise InputsError([f"the body: {exc.message}"]) from None
    if not isinstance(inputs, dict):
        raise InputsError(["the body must be a JSON object: the run's inputs, {node id: {input: value}}"])
    return inputs


def do_receive(*, webhook_id: Any, request: SignedRequest) -> AgentRun:
    """Check a request to a webhook and queue its run. Raises NotFound (no such webhook, or revoked), Unsigned
    (401), RateLimited (429), InputsError (400 bad_inputs), Replayed (409), or what queuing a run raises."""
    webhook = Webhook.objects.select_related("agent").filter(pk=webhook_id, revoked_at__isnull=True).first()
    if webhook is None:
        raise NotFound("no such webhook")
    signature = _check_signature(webhook, request, time.time())
    inputs = _inputs_of(request.body)
    now = timezone.now()
    tolerance = timedelta(seconds=copilot_setting("WEBHOOK_TOLERANCE_SECONDS"))
    WebhookDelivery.objects.filter(webhook=webhook, received_at__lt=now - 2 * tolerance).delete()
    limit = copilot_setting("WEBHOOK_RATE_PER_MINUTE")
    if WebhookDelivery.objects.filter(webhook=webhook, received_at__gte=now - timedelta(minutes=1)).count() >= limit:
        raise RateLimited(f"this webhook takes at most {limit} requests a minute; try again shortly")
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(webhook=webhook, signature=signature)
            run = do_enqueue_run(agent=webhook.agent, inputs=inputs, trigger=RunTrigger.WEBHOOK)
            delivery.run = run
            delivery.save(update_fields=["run"])
    except IntegrityError:
        raise Replayed("this request was received before: sign each request anew (a new timestamp)") from None
    return run


def webhook_dict(webhook: Webhook, *, url: str, with_secret: bool = False) -> dict[str, Any]:
    shown = {"id": str(webhook.id), "agent_id": str(webhook.agent_id), "url": url,
             "created_at": webhook.created_at.isoformat(),
             "rotated_at": webhook.rotated_at.isoformat() if webhook.rotated_at else None,
             "revoked_at": webhook.revoked_at.isoformat() if webhook.revoked_at else None}
    return {**shown, "secret": webhook.secret} if with_secret else shown
