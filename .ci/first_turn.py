"""The README's first command, tried as a new user would: log in as the demo user over HTTP, open a chat, and run
one turn over the websocket (a scripted tool call, then text). Exits 1, saying what went wrong, if it fails.

Run with the venv that `./dev serve` made (it has aiohttp, a runtime requirement): python .ci/first_turn.py URL
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid

import aiohttp
import yarl

SCRIPT = ('#script [{"text": "Let me run it.", "tools": [{"name": "mcp__copilot__run_block", "input": '
          '{"block": "text", "input": {"template": "Hello {name}", "values": {"name": "world"}}}}]}, '
          '{"text": "The block said hello."}]')


def fail(why: str) -> None:
    print(f"first turn: FAILED: {why}", file=sys.stderr)
    sys.exit(1)


async def first_turn(base: str) -> None:
    started = time.monotonic()
    # unsafe: keep cookies from an IP address (127.0.0.1), which aiohttp otherwise drops
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=120)) as http:
        async with http.get("/accounts/login/") as login_page:
            page = await login_page.text()
            if login_page.status != 200 or "Username" not in page:
                fail(f"the login page answered {login_page.status}")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if token is None:
            fail("the login page has no CSRF token")
        form = {"username": "demo", "password": "demo-password", "csrfmiddlewaretoken": token.group(1)}
        async with http.post("/accounts/login/", data=form, headers={"Referer": f"{base}/accounts/login/"}) as done:
            if "Your chats" not in await done.text():
                fail(f"logging in as demo / demo-password did not reach the chat list ({done.status} {done.url})")
        csrf = http.cookie_jar.filter_cookies(yarl.URL(base)).get("csrftoken")
        async with http.post("/sessions/new/", data={"csrfmiddlewaretoken": csrf.value},
                             headers={"Referer": f"{base}/"}) as chat:
            found = re.search(r"/sessions/([0-9a-f-]{36})/$", str(chat.url))
            if chat.status != 200 or found is None:
                fail(f"New chat did not open a chat page ({chat.status} {chat.url})")
        session_id = found.group(1)
        ws_url = base.replace("http", "ws", 1) + f"/ws/sessions/{session_id}/"
        async with http.ws_connect(ws_url, headers={"Origin": base}) as socket:
            await socket.send_json({"type": "resume", "after_seq": 0})
            await socket.send_json({"type": "send", "text": SCRIPT, "client_message_id": str(uuid.uuid4())})
            chunks = []
            async for message in socket:
                frame = json.loads(message.data)
                if frame["type"] == "error":
                    fail(f"the server answered {frame}")
                if frame["type"] == "event":
                    chunks.append(frame["chunk"])
                    if frame["chunk"]["type"] == "finish":
                        break
    kinds = [chunk["type"] for chunk in chunks]
    text = "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")
    output = next((chunk["output"] for chunk in chunks if chunk["type"] == "tool-output-available"), None)
    status = next((chunk["data"]["status"] for chunk in chunks if chunk["type"] == "data-turn"), None)
    if status != "completed" or output != {"text": "Hello world"} or "The block said hello." not in text:
        fail(f"the turn did not run as scripted: status {status}, tool output {output!r}, text {text!r}, {kinds}")
    print(f"first turn: logged in as demo, ran a tool and got text in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    asyncio.run(first_turn(sys.argv[1].rstrip("/")))
