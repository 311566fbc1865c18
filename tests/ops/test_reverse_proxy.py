"""The README's nginx configuration (docs/ops/nginx.conf) in front of a real server: websockets and the event stream
pass through unbuffered, the probes answer, and /metrics asks a proxied client for the token."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from rest_framework.authtoken.models import Token

from tests.conftest import PROJECT_DIR, ServerProcess, free_port
from tests.factories import is_finish, make_session, make_user, receive_until, script, send_frame, wait_tool

pytestmark = pytest.mark.e2e
NGINX_CONF = PROJECT_DIR / "docs" / "ops" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TOKEN = "proxied-metrics-token-0d4f"


class Nginx:
    """nginx with the README's server block, pointed at `upstream_port`, in one process of this user."""

    def __init__(self, *, upstream_port: int, folder) -> None:
        self.port = free_port()
        server_block = NGINX_CONF.read_text().replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}").replace(
            "listen 80;", f"listen 127.0.0.1:{self.port};")
        (folder / "copilot.conf").write_text(server_block)
        (folder / "nginx.conf").write_text(f"""
master_process off;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{}}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/copilot.conf;
}}
""")
        self.process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf")],
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)  # a port that is not open yet: nothing to await

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def proxied(local_model, tmp_path):
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    (tmp_path / "server").mkdir()
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path / "server",
                           extra_env={"COPILOT_METRICS_TOKEN": TOKEN})
    (tmp_path / "nginx").mkdir()
    nginx = Nginx(upstream_port=server.port, folder=tmp_path / "nginx")
    yield nginx
    nginx.stop()
    server.stop()


@database_sync_to_async
def owner_with_a_session():
    user = make_user()
    return str(make_session(user).id), Token.objects.create(user=user).key


@pytest.mark.django_db(transaction=True)
async def test_a_turn_over_a_websocket_through_nginx(proxied):
    session_id, token = await owner_with_a_session()
    async with websockets.connect(f"ws://127.0.0.1:{proxied.port}/ws/sessions/{session_id}/",
                                  additional_headers={"Authorization": f"Token {token}"}) as client:
        await client.send(json.dumps({"type": "resume", "after_seq": 0}))
        await client.send(json.dumps(send_frame(script({"tools": [wait_tool(0.2)]}, {"text": "Through nginx."}))))
        frames = await receive_until(client, is_finish)
    assert frames[-2]["chunk"]["data"]["status"] == "completed"


@pytest.mark.django_db(transaction=True)
def test_the_event_stream_through_nginx_arrives_as_it_happens(proxied):
    user = make_user()
    session = make_session(user)
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    with httpx.Client(base_url=proxied.url, headers=headers, timeout=30) as client:
        posted = client.post(f"/api/sessions/{session.id}/messages/", json={
            "text": script({"text": "Before.", "tools": [wait_tool(2)]}, {"text": "After."}),
            "client_message_id": str(uuid.uuid4())})
        assert posted.status_code == 202, posted.text
        with client.stream("GET", f"/api/sessions/{session.id}/stream/") as response:
            arrivals = []  # (when, data) of each event, as the client reads it
            for line in response.iter_lines():
                if line.startswith("data: "):
                    arrivals.append((time.monotonic(), line[6:]))
                    if line == "data: [DONE]":
                        break
    types = [json.loads(data)["type"] for _, data in arrivals[:-1]]
    assert types[0] == "start" and types[-1] == "finish" and arrivals[-1][1] == "[DONE]"
    # Not held back until the end: the start came 2 s (the tool's wait) before the finish.
    assert arrivals[-1][0] - arrivals[0][0] >= 1.5


@pytest.mark.django_db(transaction=True)
def test_probes_and_metrics_through_nginx(proxied):
    assert httpx.get(f"{proxied.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{proxied.url}/readyz").json()["status"] == "ok"
    refused = httpx.get(f"{proxied.url}/metrics")  # nginx runs on this machine, but speaks for someone else
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    scraped = httpx.get(f"{proxied.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200 and "copilot_running_turns 0.0" in scraped.text


def test_the_readme_shows_this_very_configuration():
    assert NGINX_CONF.read_text() in (PROJECT_DIR / "README.md").read_text()
