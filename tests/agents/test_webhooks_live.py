"""A webhook triggered by curl, signed with openssl as the agent page shows, against a real server and worker."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from rest_framework.authtoken.models import Token

from agents.models import RunStatus
from tests.agents.conftest import greeting_pipeline, wait_for_run
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

CURL_RECIPE = """
sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$SECRET" -hex | sed 's/^.* //')
curl -sS -X POST "$URL" -H 'Content-Type: application/json' \\
  -H "X-Copilot-Timestamp: $ts" -H "X-Copilot-Signature: sha256=$sig" -d "$body" -w ' %{http_code}'
"""


def curl(url: str, secret: str, body: str, ts: str | None = None) -> tuple[str, str]:
    script = f"ts={ts or '$(date +%s)'}\n{CURL_RECIPE}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True,
                          env={"URL": url, "SECRET": secret, "body": body, "PATH": "/usr/bin:/bin"})
    answer, _, status = done.stdout.rpartition(" ")
    return answer, status


def test_curl_triggers_a_run_that_completes(daphne_server, agents_worker):
    user = make_user()
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    created = httpx.post(f"{daphne_server.http_url}/api/agents/", headers=headers, timeout=10,
                            json={"name": "hello", "graph": greeting_pipeline()}).json()
    hook = httpx.post(f"{daphne_server.http_url}/api/agents/{created['id']}/webhooks/", headers=headers,
                         timeout=10).json()
    assert hook["url"].startswith(daphne_server.http_url + "/api/hooks/")
    answer, status = curl(hook["url"], hook["secret"], '{"greet": {"values": {"name": "curl"}}}')
    assert status == "202", answer
    run = wait_for_run(json.loads(answer)["run_id"])
    assert run.status == RunStatus.COMPLETED and run.trigger == "webhook"
    assert run.outputs["sentence"] == {"text": "Hello curl, the answer is 42."}
    _, unsigned = curl(hook["url"], "whsec_wrong", "{}")
    assert unsigned == "401"
