"""The calculator, json_extract, http_get and llm blocks."""

from __future__ import annotations

import asyncio
import ipaddress
import json

import httpx
import pytest
from aiohttp import web

from agents.blocks import BlockError, all_blocks, run_block
from agents.blocks import http_get as http_get_module
from agents.copilot_tools import list_blocks_tool, run_block_tool
from tests.conftest import free_port

# --- calculator ---


@pytest.mark.parametrize(("expression", "result"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3.5), ("7 // 2", 3), ("-7 // 2", -4), ("7 % 3", 1),
    ("2 ** 10", 1024), ("2 ** -1", 0.5), ("-2 ** 2", -4), ("+-+3", -3), ("1.5 * 4", 6.0), ("  42  ", 42),
    ("2 ** 3 ** 2", 512), ("10 ** 1000 // 10 ** 999", 10), ("1e3 + 1", 1001.0),
])
async def test_calculator_does_arithmetic(expression, result):
    assert await run_block("calculator", {"expression": expression}) == {"result": result}


async def test_calculator_results_can_be_big_integers_within_the_limit():
    assert (await run_block("calculator", {"expression": "2 ** 1000"}))["result"] == 2**1000


@pytest.mark.parametrize(("expression", "refused"), [
    ("x + 1", "the name 'x' is not arithmetic"),
    ("__import__('os').system('true')", "is not arithmetic"),
    ("abs(-1)", "the function call 'abs(-1)' is not arithmetic"),
    ("(1).real", "the attribute access '(1).real' is not arithmetic"),
    ("().__class__", "is not arithmetic"),
    ("'a' * 3", "the string \"'a'\" is not arithmetic"),
    ("1 < 2", "the comparison '1 < 2' is not arithmetic"),
    ("1 and 2", "the boolean operation '1 and 2' is not arithmetic"),
    ("True + 1", "the constant 'True' is not arithmetic"),
    ("1j * 2", "the constant '1j' is not arithmetic"),
    ("1 << 100000", "the operator '<<' in '1 << 100000' is not arithmetic"),
    ("~1", "the operator '~' in '~1' is not arithmetic"),
    ("[1, 2]", "is not arithmetic"),
    ("(lambda: 1)()", "is not arithmetic"),
])
async def test_calculator_refuses_what_is_not_arithmetic(expression, refused):
    with pytest.raises(BlockError, match="^calculator: ") as caught:
        await run_block("calculator", {"expression": expression})
    assert refused in str(caught.value)


@pytest.mark.parametrize("expression", ["9 ** 9 ** 9", "2 ** 1001", "2 ** -1001", "10 ** 10 ** 10"])
async def test_calculator_refuses_a_huge_exponent_at_once(expression):
    with pytest.raises(BlockError, match="exponents are limited to -1000..1000"):
        await run_block("calculator", {"expression": expression})


@pytest.mark.parametrize("expression", ["(10 ** 999) ** 2", "999 ** 999 ** 1", "10 ** 1000 * 10", "1e308 * 10",
                                        "1e999", "10 ** 400 / 1", "10 ** 400 * 1.5"])
async def test_calculator_refuses_a_result_too_large(expression):
    with pytest.raises(BlockError, match="the result is too large"):
        await run_block("calculator", {"expression": expression})


@pytest.mark.parametrize("expression", ["1 / 0", "1 // 0", "1 % 0", "0 ** -1", "1.0 / (2 - 2)"])
async def test_calculator_refuses_division_by_zero(expression):
    with pytest.raises(BlockError, match="calculator: division by zero"):
        await run_block("calculator", {"expression": expression})


async def test_calculator_refuses_a_too_long_expression():
    expression = "+".join(["1"] * 501)  # 1,001 characters
    with pytest.raises(BlockError, match="longer than 1000 characters"):
        await run_block("calculator", {"expression": expression})
    assert await run_block("calculator", {"expression": "+".join(["1"] * 500)}) == {"result": 500}


@pytest.mark.parametrize(("block_input", "refused"), [
    ({}, "expression must be a string"), ({"expression": 3}, "expression must be a string"),
    ({"expression": "   "}, "the expression is empty"), ({"expression": "1 +"}, "cannot parse '1 \\+'"),
    ({"expression": "(" * 300 + "1" + ")" * 300}, "cannot parse"),
    ({"expression": "-" * 999 + "1"}, "nested too deeply"),
    ({"expression": "(-8) ** 0.5"}, "not a real number"),
])
async def test_calculator_refuses_bad_input(block_input, refused):
    with pytest.raises(BlockError, match=refused):
        await run_block("calculator", block_input)


# --- json_extract ---

DATA = {"a": {"b": [{"c": 1}, {"c": [10, 20]}]}, "name": "copilot", "empty": None, "dotted key": True}


@pytest.mark.parametrize(("path", "value"), [
    ("a.b[0].c", 1), ("a.b[1].c[1]", 20), ("a.b[1]", {"c": [10, 20]}), ("name", "copilot"), ("empty", None),
    ("dotted key", True), ("", DATA),
])
async def test_json_extract_follows_a_path(path, value):
    assert await run_block("json_extract", {"data": DATA, "path": path}) == {"value": value}


async def test_json_extract_parses_data_given_as_a_json_string():
    result = await run_block("json_extract", {"data": json.dumps(DATA), "path": "a.b[1].c[0]"})
    assert result == {"value": 10}
    assert await run_block("json_extract", {"data": "[[1, [2, 3]]]", "path": "[0][1][1]"}) == {"value": 3}


@pytest.mark.parametrize(("path", "refused"), [
    ("a.x", "path 'a.x': no key 'x' in the value at 'a'"),
    ("missing", "path 'missing': no key 'missing' in the data"),
    ("a.b[5].c", "path 'a.b[5].c': no index 5 in the value at 'a.b', a list of 2"),
    ("a.b[0].c.d", "path 'a.b[0].c.d': the value at 'a.b[0].c' is a number, not an object"),
    ("name[0]", "path 'name[0]': the value at 'name' is a string, not a list"),
    ("a.b.0", "path 'a.b.0': the value at 'a.b' is a list, not an object"),
])
async def test_json_extract_names_the_path_when_something_is_missing(path, refused):
    with pytest.raises(BlockError) as caught:
        await run_block("json_extract", {"data": DATA, "path": path})
    assert str(caught.value) == f"json_extract: {refused}"


@pytest.mark.parametrize(("block_input", "refused"), [
    ({"path": "a"}, "data is required"),
    ({"data": {}, "path": 3}, "path must be a string"),
    ({"data": "{not json", "path": "a"}, "data is a string that is not JSON"),
    ({"data": {}, "path": "a..b"}, "bad path 'a..b'"),
    ({"data": {}, "path": ".a"}, "bad path '.a'"),
    ({"data": {}, "path": "a[x]"}, "bad path 'a\\[x\\]'"),
    ({"data": {}, "path": "a[-1]"}, "bad path"),
    ({"data": {}, "path": "a[0]b"}, "bad path"),
])
async def test_json_extract_refuses_bad_input(block_input, refused):
    with pytest.raises(BlockError, match=refused):
        await run_block("json_extract", block_input)


# --- http_get, against a real HTTP server on 127.0.0.1 ---


class LocalSite:
    """An aiohttp server on a loopback address and port that records the requests it gets; `app` takes more routes
    until it starts."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.paths: list[str] = []
        self.hosts: list[str] = []
        self.released = asyncio.Event()  # never set while a test runs; set at teardown to free a hung handler
        self.hung = asyncio.Event()
        self.port = 0
        self.app = app = web.Application()
        app.router.add_get("/ok", self.ok)
        app.router.add_get("/missing", self.missing)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/loop", self.loop)
        app.router.add_get("/big", self.big)
        app.router.add_get("/endless", self.endless)
        app.router.add_get("/hang", self.hang)
        app.router.add_get("/host", self.host)
        app.router.add_post("/v1/messages", self.messages)
        self.runner = web.AppRunner(app, access_log=None)

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.netloc_host}:{self.port}{path}"

    @property
    def netloc_host(self) -> str:
        return f"[{self.address}]" if ":" in self.address else self.address

    @property
    def entry(self) -> str:
        """Its allow-list entry: its address and port (an entry without a port allows port 80 only)."""
        return f"{self.netloc_host}:{self.port}"

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.address, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.released.set()
        await self.runner.cleanup()

    def _seen(self, request: web.Request) -> None:
        self.paths.append(request.path)
        self.hosts.append(request.headers.get("Host", ""))

    async def ok(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.Response(text="hello, block", content_type="text/plain", charset="utf-8")

    async def missing(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({"error": "no such thing"}, status=404)

    async def redirect(self, request: web.Request) -> web.Response:
        self._seen(request)
        raise web.HTTPFound(request.query["to"])

    async def loop(self, request: web.Request) -> web.Response:
        self._seen(request)
        raise web.HTTPTemporaryRedirect("/loop")

    async def big(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.Response(text="é" * 5_000, content_type="text/plain", charset="utf-8")  # 10,000 bytes

    async def endless(self, request: web.Request) -> web.StreamResponse:
        """Streams until the client hangs up (up to 50 MB, so a client that never stops cannot hang the test)."""
        self._seen(request)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        try:
            for _ in range(50 * 1024):
                await response.write(b"x" * 1024)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def hang(self, request: web.Request) -> web.Response:
        self._seen(request)
        self.hung.set()
        await self.released.wait()
        return web.Response(text="too late")

    async def host(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.Response(text=request.headers["Host"])

    async def messages(self, request: web.Request) -> web.Response:
        """A stand-in Messages API that echoes what it was sent."""
        self._seen(request)
        self.last_headers = dict(request.headers)
        self.last_body = await request.json()
        return web.json_response({"type": "message", "role": "assistant", "content": [
            {"type": "text", "text": "one "}, {"type": "tool_use", "id": "t", "name": "x", "input": {}},
            {"type": "text", "text": "two"}]})


@pytest.fixture
async def site():
    local_site = LocalSite()
    await local_site.start()
    yield local_site
    await local_site.stop()


@pytest.fixture
def http_settings(settings):
    """Set http_get's settings for a test: `http_settings(["127.0.0.1"], HTTP_GET_MAX_BYTES=...)`."""

    def configure(allowed_hosts: list[str], **extra) -> None:
        settings.COPILOT = {**settings.COPILOT, "HTTP_GET_ALLOWED_HOSTS": allowed_hosts, **extra}

    return configure


@pytest.fixture
def no_connection(monkeypatch):
    """Fail the test if http_get sends any request."""

    async def refuse_to_send(*args, **kwargs):
        raise AssertionError("http_get tried to connect")

    monkeypatch.setattr(httpx.AsyncClient, "send", refuse_to_send)


async def test_settings_have_safe_defaults():
    from django.conf import settings as django_settings

    assert django_settings.COPILOT["HTTP_GET_ALLOWED_HOSTS"] == []
    assert django_settings.COPILOT["HTTP_GET_TIMEOUT_SECONDS"] == 10
    assert django_settings.COPILOT["HTTP_GET_MAX_BYTES"] == 1_000_000


async def test_http_get_fetches_from_an_allowed_host(site, http_settings):
    http_settings([site.entry])
    result = await run_block("http_get", {"url": site.url("/ok")})
    assert result == {"status": 200, "content_type": "text/plain; charset=utf-8", "text": "hello, block",
                      "truncated": False}
    assert site.paths == ["/ok"]


async def test_http_get_returns_an_error_status_as_a_result(site, http_settings):
    http_settings([site.entry])
    result = await run_block("http_get", {"url": site.url("/missing")})
    assert result["status"] == 404 and json.loads(result["text"]) == {"error": "no such thing"}
    assert result["content_type"].startswith("application/json")


async def test_http_get_refuses_a_host_not_allowed_without_connecting(site, http_settings, no_connection):
    http_settings([])
    with pytest.raises(BlockError, match="the host '127.0.0.1' is not in HTTP_GET_ALLOWED_HOSTS"):
        await run_block("http_get", {"url": site.url("/ok")})
    http_settings([site.entry])
    with pytest.raises(BlockError, match="the host 'localhost' is not in HTTP_GET_ALLOWED_HOSTS"):
        await run_block("http_get", {"url": site.url("/ok", host="localhost")})
    with pytest.raises(BlockError, match="the host '10.0.0.1' is not in HTTP_GET_ALLOWED_HOSTS"):
        await run_block("http_get", {"url": "http://10.0.0.1/"})
    assert site.paths == []


@pytest.mark.parametrize(("url", "kind"), [
    ("http://10.0.0.1/", "private"), ("http://192.168.1.1:8080/x", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"), ("http://127.0.0.1/", "loopback"),
    ("http://localhost/", "loopback"), ("http://[::1]/", "loopback"), ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"), ("http://240.0.0.1/", "reserved"),
    ("http://[::ffff:10.0.0.1]/", "private"), ("http://100.64.0.1/", "non-public"),
])
async def test_http_get_refuses_a_private_address_before_connecting(url, kind, http_settings, no_connection):
    # "*" admits any host, but only at a public address; private ones must be listed exactly.
    http_settings(["*", "*:8080"])
    with pytest.raises(BlockError, match=f"is a {kind} address"):
        await run_block("http_get", {"url": url})


async def test_http_get_connects_to_the_address_it_checked(site, http_settings, monkeypatch):
    """A wildcard-allowed host is resolved once and the connection goes to that address, with the name kept."""
    http_settings([f"*.example.test:{site.port}"])
    resolved = []

    async def fake_resolve(host, port):
        resolved.append((host, port))
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(http_get_module, "resolve", fake_resolve)
    monkeypatch.setattr(http_get_module, "refusal", lambda address: None)  # take 127.0.0.1 for a public address
    result = await run_block("http_get", {"url": site.url("/host", host="api.example.test")})
    assert result["text"] == f"api.example.test:{site.port}"
    assert resolved == [("api.example.test", site.port)]


async def test_http_get_wildcard_entries_match_subdomains_only(http_settings, no_connection):
    http_settings(["*.example.test"])
    with pytest.raises(BlockError, match="the host 'example.test' is not in"):
        await run_block("http_get", {"url": "http://example.test/"})
    with pytest.raises(BlockError, match="the host 'badexample.test' is not in"):
        await run_block("http_get", {"url": "http://badexample.test/"})


async def test_http_get_follows_a_redirect_to_an_allowed_host(site, http_settings):
    http_settings([site.entry])
    result = await run_block("http_get", {"url": site.url("/redirect?to=/ok")})
    assert result["status"] == 200 and result["text"] == "hello, block"
    assert site.paths == ["/redirect", "/ok"]


async def test_http_get_refuses_a_redirect_to_a_host_not_allowed(site, http_settings):
    http_settings([site.entry])
    target = site.url("/ok", host="localhost")  # the same server, under a name that is not allowed
    with pytest.raises(BlockError, match=r"refused the redirect to 'http://localhost:\d+/ok': "
                                         r"the host 'localhost' is not in HTTP_GET_ALLOWED_HOSTS"):
        await run_block("http_get", {"url": site.url(f"/redirect?to={target}")})
    assert site.paths == ["/redirect"]


async def test_http_get_refuses_a_redirect_to_a_private_address(site, http_settings):
    http_settings([site.entry, "*"])
    with pytest.raises(BlockError, match="refused the redirect to 'http://10.0.0.1/admin': '10.0.0.1' is a private"):
        await run_block("http_get", {"url": site.url("/redirect?to=http://10.0.0.1/admin")})


async def test_http_get_refuses_a_redirect_to_another_scheme(site, http_settings):
    http_settings([site.entry])
    with pytest.raises(BlockError, match="only http and https"):
        await run_block("http_get", {"url": site.url("/redirect?to=file:///etc/passwd")})


async def test_http_get_follows_at_most_three_redirects(site, http_settings):
    http_settings([site.entry])
    with pytest.raises(BlockError, match="more than 3 redirects"):
        await run_block("http_get", {"url": site.url("/loop")})
    assert site.paths == ["/loop"] * 4  # the first request and three redirects followed


async def test_http_get_truncates_a_body_over_the_size_limit(site, http_settings):
    http_settings([site.entry], HTTP_GET_MAX_BYTES=1_001)
    result = await run_block("http_get", {"url": site.url("/big")})
    assert result["truncated"] is True
    assert result["text"] == "é" * 500 + "\ufffd"  # 1,001 bytes: the last character is cut in half
    http_settings([site.entry], HTTP_GET_MAX_BYTES=10_000)
    assert await run_block("http_get", {"url": site.url("/big")}) == {
        "status": 200, "content_type": "text/plain; charset=utf-8", "text": "é" * 5_000, "truncated": False}


async def test_http_get_stops_reading_an_endless_body_at_the_size_limit(site, http_settings):
    http_settings([site.entry], HTTP_GET_MAX_BYTES=100_000)
    result = await run_block("http_get", {"url": site.url("/endless")})
    assert result["truncated"] is True and result["text"] == "x" * 100_000


async def test_http_get_gives_up_after_the_timeout(site, http_settings):
    http_settings([site.entry], HTTP_GET_TIMEOUT_SECONDS=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BlockError, match=r"no complete answer from '.*/hang' within 0.3 seconds"):
        await run_block("http_get", {"url": site.url("/hang")})
    assert site.hung.is_set()  # the request reached the server, which never answered
    assert loop.time() - started < 5


async def test_http_get_reports_a_connection_failure(http_settings):
    port = free_port()
    http_settings([f"127.0.0.1:{port}"])
    with pytest.raises(BlockError, match="http_get: cannot fetch 'http://127.0.0.1:.*': ConnectError"):
        await run_block("http_get", {"url": f"http://127.0.0.1:{port}/"})


@pytest.mark.parametrize(("url", "refused"), [
    ("ftp://127.0.0.1/file", "only http and https"), ("file:///etc/passwd", "only http and https"),
    ("http:///nohost", "has no host|not a valid URL"), ("http://user:pw@127.0.0.1/", "user name or password"),
    ("", "url must be a string"), (None, "url must be a string"), ("http://127.0.0.1/" + "a" * 2_100, "longer than"),
])
async def test_http_get_refuses_bad_urls(url, refused, http_settings, no_connection):
    http_settings(["127.0.0.1"])
    with pytest.raises(BlockError, match=refused):
        await run_block("http_get", {"url": url})


# --- llm, against the local model ---


async def test_llm_answers_an_unscripted_prompt(local_model):
    result = await run_block("llm", {"prompt": "Name a colour, please."})
    assert result["text"].startswith("You said: Name a colour, please.")


async def test_llm_plays_a_scripted_answer_and_sends_the_configured_model(local_model, copilot_settings):
    prompt = 'Say something.\n#script [{"text": "Exactly this."}]'
    result = await run_block("llm", {"prompt": prompt, "system": "Be brief.", "max_tokens": 50})
    assert result == {"text": "Exactly this."}
    sent = local_model.model.requests[-1]
    assert sent["model"] == copilot_settings["MODEL"] and sent["system"] == "Be brief." and sent["max_tokens"] == 50
    assert sent["messages"] == [{"role": "user", "content": prompt}] and not sent.get("stream")


async def test_llm_sends_the_key_and_version_and_joins_the_text_blocks(site, settings):
    settings.COPILOT = {**settings.COPILOT, "ANTHROPIC_BASE_URL": site.url("/"), "ANTHROPIC_API_KEY": "sk-test"}
    assert await run_block("llm", {"prompt": "hi"}) == {"text": "one two"}
    assert site.paths == ["/v1/messages"]
    assert site.last_headers["x-api-key"] == "sk-test" and site.last_headers["anthropic-version"] == "2023-06-01"
    assert site.last_body["max_tokens"] == 1024 and "system" not in site.last_body


async def test_llm_reports_an_api_error_with_its_status_and_message(local_model):
    with pytest.raises(BlockError, match="llm: the model API answered 500: api_error: Internal server error"):
        await run_block("llm", {"prompt": 'Fail.\n#script [{"error": "api_error"}]'})


async def test_llm_reports_a_model_it_cannot_reach(settings):
    settings.COPILOT = {**settings.COPILOT, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(BlockError, match="llm: cannot reach the model at http://127.0.0.1:"):
        await run_block("llm", {"prompt": "hi"})


@pytest.mark.parametrize(("block_input", "refused"), [
    ({}, "prompt must be a non-empty string"), ({"prompt": "  "}, "prompt must be a non-empty string"),
    ({"prompt": "hi", "system": 3}, "system must be a string"),
    ({"prompt": "hi", "max_tokens": 0}, "max_tokens must be"), ({"prompt": "hi", "max_tokens": "9"}, "max_tokens"),
    ({"prompt": "hi", "max_tokens": True}, "max_tokens"), ({"prompt": "hi", "max_tokens": 10**9}, "max_tokens"),
])
async def test_llm_refuses_bad_input(block_input, refused, no_connection):
    with pytest.raises(BlockError, match=refused):
        await run_block("llm", block_input)


# --- the copilot's tools see the new blocks ---


async def test_the_copilot_lists_and_runs_the_new_blocks():
    listed = json.loads((await list_blocks_tool.handler({}))["content"][0]["text"])
    names = {block["name"] for block in listed["blocks"]}
    assert names >= {"calculator", "json_extract", "http_get", "llm", "text", "wait"}
    for block in all_blocks():
        assert block.description and block.input_schema["type"] == "object" and block.output_schema["type"] == "object"
    ok = await run_block_tool.handler({"block": "calculator", "input": {"expression": "6 * 7"}})
    assert json.loads(ok["content"][0]["text"]) == {"result": 42}
    refused = await run_block_tool.handler({"block": "calculator", "input": {"expression": "open('x')"}})
    assert refused["is_error"] is True and "is not arithmetic" in refused["content"][0]["text"]
