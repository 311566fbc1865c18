"""Every page runs under the site's Content-Security-Policy: sent on each, and nothing on any page breaks it.

A real daphne process and a real browser: each page is loaded as its user would (logged in, working websocket,
Swagger UI drawn, admin scripts run) with a listener for `securitypolicyviolation` events registered before any
of the page's own scripts, and the HTML the server sent is read for inline scripts, event-handler attributes and
inline styles, which the policy would block (so a page that needs one is broken under it).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from agents.actions import do_create_agent
from chat.models import ToolCall
from tests.agents.conftest import library, two_waits_and_a_join  # noqa: F401  (a fixture, used below)
from tests.factories import make_session, make_user, script, wait_tool
from tests.web.builders import saved_turn
from tests.web.test_chat_page import log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

EXPECTED_POLICY = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self' data:",
    "connect-src": "'self'", "font-src": "'self'", "object-src": "'none'", "base-uri": "'self'",
    "frame-ancestors": "'none'", "form-action": "'self'",
}
LISTEN_FOR_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => window.cspViolations.push(
  `${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}:${event.lineNumber}` +
  (event.sample ? ` (${event.sample})` : "")), true);
"""
ANSWER = """## Results

| block | seconds |
|:------|--------:|
| wait  | 1.5 |

```python
def wait(seconds):
    return {"seconds": seconds}
```

Read [the docs](https://example.com/docs) and `input_schema`."""


class InlineCode(HTMLParser):
    """What the CSP would block in a page's HTML: inline scripts and styles, handler and style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._script: dict | None = None

    def handle_starttag(self, tag, attrs):
        named = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"<{tag} {name}=…>")
        if tag == "style":
            self.found.append("<style> element")
        if tag == "script":
            self._script = named

    def handle_endtag(self, tag):
        self._script = None if tag == "script" else self._script

    def handle_data(self, data):
        script = self._script
        if script is not None and "src" not in script and script.get("type") != "application/json" and data.strip():
            self.found.append(f"inline <script>: {data.strip()[:60]}")


def policy_of(header: str) -> dict[str, str]:
    return dict(directive.strip().split(" ", 1) for directive in header.split(";") if directive.strip())


def visit(page, url: str, ready) -> list[str]:
    """Load `url`, wait until `ready(page)` holds, and return every way the page breaks the policy."""
    response = page.goto(url)
    assert response is not None and response.ok, f"{url}: {response and response.status}"
    problems = []
    header = response.headers.get("content-security-policy")
    if header is None or policy_of(header) != EXPECTED_POLICY:
        problems.append(f"Content-Security-Policy header: {header!r}")
    parser = InlineCode()
    parser.feed(response.text())
    problems += parser.found
    ready(page)
    # Violation events are queued as tasks: let the ones already queued run.
    problems += page.evaluate("() => new Promise((done) => setTimeout(() => done(window.cspViolations), 0))")
    return problems


@pytest.fixture
def site(daphne_server, library):  # noqa: F811
    """A staff member with a chat (a finished turn with Markdown, a dangling call), an agent, and a browser page."""
    staff = make_user(portable=True, is_staff=True, is_superuser=True)
    session = make_session(staff, title="Blocks chat")
    turn = saved_turn(session, prompt="Wait a little, please", answer=ANSWER, dangling=1,
                      tools=[{**wait_tool(1.5), "output": {"seconds": 1.5}}])
    agent = do_create_agent(owner_id=staff.pk, name="waiter", description="waits twice", graph=two_waits_and_a_join(0.1))
    return {"staff": staff, "session": session, "turn": turn, "agent": agent,
            "call": ToolCall.objects.filter(turn=turn).order_by("part_index").first()}


def ready_when(selector: str):
    return lambda page: expect(page.locator(selector).first).to_be_visible()


def test_the_pages_of_a_visitor_send_the_policy_and_break_none_of_it(daphne_server, page):
    page.add_init_script(LISTEN_FOR_VIOLATIONS)
    problems = {
        "login": visit(page, f"{daphne_server.http_url}/accounts/login/", ready_when("#id_username")),
        "admin login": visit(page, f"{daphne_server.http_url}/admin/login/", ready_when("#id_username")),
    }
    assert problems == {"login": [], "admin login": []}


def test_every_page_of_a_user_and_of_staff_sends_the_policy_and_breaks_none_of_it(site, daphne_server, page):
    page.add_init_script(LISTEN_FOR_VIOLATIONS)
    log_in(page, daphne_server, site["staff"].username)
    base = daphne_server.http_url
    session, turn, call, agent = site["session"], site["turn"], site["call"], site["agent"]

    def chat_page_with_a_live_turn(page):
        expect(page.locator(".message.assistant table")).to_have_count(1)
        expect(page.locator(".message.assistant .hljs-keyword").first).to_be_visible()
        expect(page.get_by_role("button", name="Send")).to_be_enabled()  # the websocket is open
        send(page, script({"text": "Live **under** the policy.", "tools": [wait_tool(0.2)]}, {"text": "Done."}))
        expect(page.locator(".message.assistant .text").last).to_have_text("Done.")

    pages = {
        "chat list": (f"{base}/", ready_when(".sessions a")),
        "chat": (f"{base}/sessions/{session.id}/", chat_page_with_a_live_turn),
        "agents": (f"{base}/agents/", ready_when(".agents-table")),
        "agent": (f"{base}/agents/{agent.id}/", ready_when(".graph-nodes")),
        "agent library": (f"{base}/agents/library/", ready_when(".library-entry")),
        "new agent (the builder)": (f"{base}/agents/new/", ready_when("#builder[aria-busy=false] #palette button")),
        "edit agent (the builder)": (f"{base}/agents/{agent.id}/edit/",
                                     ready_when("#builder[aria-busy=false] .drawflow-node")),
        "API docs": (f"{base}/api/docs/", ready_when("#swagger-ui .opblock")),
        "admin index": (f"{base}/admin/", ready_when("#moderation-module")),
        "admin dashboard": (f"{base}/admin/dashboard/", ready_when(".ops-dashboard[data-drawn=true]")),
        "admin turns": (f"{base}{reverse('admin:chat_turn_changelist')}", ready_when(".status-badge")),
        "admin tool calls": (f"{base}{reverse('admin:chat_toolcall_changelist')}", ready_when(".status-badge")),
        "admin tool call": (f"{base}{reverse('admin:chat_toolcall_change', args=[call.pk])}", ready_when("pre.json")),
        "admin turn": (f"{base}{reverse('admin:chat_turn_change', args=[turn.pk])}", ready_when(".object-tools")),
        "admin session": (f"{base}{reverse('admin:chat_chatsession_change', args=[session.pk])}",
                          ready_when(".object-tools")),
        "admin transcript": (f"{base}{reverse('admin:chat_chatsession_transcript', args=[session.pk])}",
                             ready_when(".transcript .bubble")),
        "admin user add": (f"{base}{reverse('admin:auth_user_add')}", ready_when("#id_username")),
    }
    problems = {name: visit(page, url, ready) for name, (url, ready) in pages.items()}
    assert problems == {name: [] for name in pages}


def test_the_policy_catches_what_it_is_meant_to(site, daphne_server, page):
    """The listener and the policy are live: an inline script added to a page is blocked and reported."""
    page.add_init_script(LISTEN_FOR_VIOLATIONS)
    log_in(page, daphne_server, site["staff"].username)
    page.goto(f"{daphne_server.http_url}/")
    blocked = page.evaluate("""() => new Promise((done) => {
        document.addEventListener("securitypolicyviolation", () => done(window.cspViolations), {once: true});
        const script = document.createElement("script");
        script.textContent = "window.inlineRan = true";
        document.body.append(script);
    })""")
    assert page.evaluate("window.inlineRan === undefined")
    assert any(re.match(r"script-src(-elem)? blocked inline", problem) for problem in blocked), blocked

