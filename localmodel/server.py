"""The local model: an Anthropic Messages API server that plays `#script`s (PROTOCOL §5)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import uuid
from collections import OrderedDict
from typing import Any

from aiohttp import web

from localmodel.demo import demo_step
from localmodel.script import ScriptError, Step, last_prompt_index, locate

logger = logging.getLogger(__name__)

MODEL_NAME = "local-model"
MAX_FAULT_KEYS = 10_000
MAX_CACHED_PREFIXES = 10_000
MIN_CACHEABLE_TOKENS = 1_024  # as the real API: shorter prefixes are not cached
UNKNOWN_MODEL_PREFIX = "unknown-"  # a model the local model does not have, as the API refuses one (404)
ERROR_RESPONSES = {
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "api_error": (500, "api_error", "Internal server error"),
}


def estimate_tokens(payload: Any) -> int:
    return max(1, len(json.dumps(payload, default=str)) // 4)


def prompt_segments(body: dict[str, Any]) -> list[Any]:
    """The request's prompt in the order the API caches it: tools, then system blocks, then message blocks."""
    system = body.get("system") or []
    segments: list[Any] = list(body.get("tools") or [])
    segments += [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            segments += content
        else:
            segments.append({"role": message.get("role") if isinstance(message, dict) else None, "text": content})
    return segments


def cache_breakpoints(segments: list[Any]) -> list[int]:
    """Where each prefix marked `cache_control` ends (the number of segments it holds), in order."""
    return [index + 1 for index, segment in enumerate(segments)
            if isinstance(segment, dict) and segment.get("cache_control")]


def words(text: str) -> list[str]:
    """Split text into about-one-word deltas that join back to the text exactly."""
    pieces, current = [], ""
    for char in text:
        current += char
        if char == " ":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


class LocalModel:
    """The request handlers and the fault counters they share.

    It keeps bounded state only: the fault counters of the newest MAX_FAULT_KEYS scripted steps, and the
    requests themselves only when asked to (`keep_requests`, for tests that read what the CLI sent).
    """

    def __init__(self, *, keep_requests: bool = False) -> None:
        self.fault_counts: OrderedDict[str, int] = OrderedDict()
        self.keep_requests = keep_requests
        self.requests: list[dict[str, Any]] = []
        self.max_input_tokens: int | None = None  # past this, a request is refused as the real API does
        self.cached_prefixes: OrderedDict[str, None] = OrderedDict()  # prompt prefixes "in the cache", newest last

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_get("/health", self.health)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def not_found(self, request: web.Request) -> web.Response:
        return api_error(404, "not_found_error", f"no route for {request.method} {request.path}")

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"input_tokens": estimate_tokens(body.get("messages", []))})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return api_error(400, "invalid_request_error", "the body is not JSON")
        messages = body.get("messages")
        if not isinstance(messages, list):
            return api_error(400, "invalid_request_error", "messages: a list is required")
        if self.keep_requests:
            self.requests.append(body)
        model = body.get("model")
        if isinstance(model, str) and model.startswith(UNKNOWN_MODEL_PREFIX):
            return api_error(404, "not_found_error", f"model: {model}")
        input_tokens = estimate_tokens(messages)
        if self.max_input_tokens is not None and input_tokens > self.max_input_tokens:
            return api_error(400, "invalid_request_error",
                             f"prompt is too long: {input_tokens} tokens > {self.max_input_tokens} maximum")
        try:
            position = locate(messages)
        except ScriptError as exc:
            step = Step(text=f"Your #script could not be played: {exc}")
        else:
            if position is None:
                step = demo_step(messages, last_prompt_index(messages), system=body.get("system"))
            else:
                step = (position.step or Step(text="done.")).played(messages)
                fault_key = f"{request.headers.get('x-claude-code-session-id', '')}|{position.anchor}|{position.index}"
                if step.error and self._should_fail(fault_key, step):
                    if step.error in ERROR_RESPONSES:
                        status, kind, text = ERROR_RESPONSES[step.error]
                        return api_error(status, kind, text)
                    return await self.stream(request, body, step, drop=True)
        if body.get("stream"):
            return await self.stream(request, body, step, drop=False)
        return web.json_response(self.whole_message(body, step))

    def _should_fail(self, fault_key: str, step: Step) -> bool:
        count = self.fault_counts.pop(fault_key, 0) + 1
        self.fault_counts[fault_key] = count  # newest last
        while len(self.fault_counts) > MAX_FAULT_KEYS:
            self.fault_counts.popitem(last=False)
        return step.error_times is None or count <= step.error_times

    def prompt_usage(self, body: dict[str, Any]) -> dict[str, int]:
        """Input tokens as the API counts them, with prompt caching: of the whole prompt (tools, system, messages),
        the longest prefix marked `cache_control` that an earlier request wrote is read from the cache; what follows
        it up to the last mark is written to it; the rest is plain input. Prefixes shorter than
        MIN_CACHEABLE_TOKENS are not cached."""
        segments = prompt_segments(body)
        total = estimate_tokens(segments)
        usage = {"input_tokens": total, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        prefixes = [(estimate_tokens(segments[:cut]), self._prefix_key(body, segments[:cut]))
                    for cut in cache_breakpoints(segments)]
        prefixes = [(tokens, key) for tokens, key in prefixes if tokens >= MIN_CACHEABLE_TOKENS]
        if not prefixes:
            return usage
        read = max((tokens for tokens, key in prefixes if key in self.cached_prefixes), default=0)
        written = prefixes[-1][0] - read
        for _, key in prefixes:
            self.cached_prefixes.pop(key, None)
            self.cached_prefixes[key] = None
        while len(self.cached_prefixes) > MAX_CACHED_PREFIXES:
            self.cached_prefixes.popitem(last=False)
        usage.update(cache_read_input_tokens=read, cache_creation_input_tokens=written,
                     input_tokens=max(1, total - read - written))
        return usage

    @staticmethod
    def _prefix_key(body: dict[str, Any], prefix: list[Any]) -> str:
        return hashlib.sha256(json.dumps([body.get("model"), prefix], sort_keys=True, default=str).encode()).hexdigest()

    def content_blocks(self, step: Step) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if step.text:
            blocks.append({"type": "text", "text": step.text})
        for tool in step.tools:
            blocks.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}",
                           "name": tool.name, "input": tool.input})
        return blocks

    def whole_message(self, body: dict[str, Any], step: Step) -> dict[str, Any]:
        blocks = self.content_blocks(step)
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": body.get("model", MODEL_NAME), "content": blocks,
            "stop_reason": "tool_use" if step.tools else "end_turn", "stop_sequence": None,
            "usage": {**self.prompt_usage(body), "output_tokens": estimate_tokens(blocks)},
        }

    async def stream(self, request: web.Request, body: dict[str, Any], step: Step, *, drop: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        message = self.whole_message(body, step)
        blocks, message["content"] = message["content"], []
        stop_reason, message["stop_reason"] = message["stop_reason"], None
        output_tokens = message["usage"]["output_tokens"]
        message["usage"]["output_tokens"] = 1

        async def send(event: str, payload: dict[str, Any]) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode())
            if step.delay_ms:
                await asyncio.sleep(step.delay_ms / 1000)

        await send("message_start", {"type": "message_start", "message": message})
        if drop:
            # Cut the connection mid-answer: some text streamed, no message_stop.
            await send("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}})
            await send("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": "This answer will be cut "}})
            request.transport.close()
            return response
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                await send("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}})
                for piece in words(block["text"]):
                    await send("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "text_delta", "text": piece}})
            else:
                await send("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {**block, "input": {}}})
                await send("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "input_json_delta",
                                                             "partial_json": json.dumps(block["input"])}})
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
        await send("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                     "usage": {"output_tokens": output_tokens}})
        await send("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response


def api_error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)


class LocalModelServer:
    """The local model on a loopback port, served from a thread of its own."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, keep_requests: bool = False) -> None:
        self.host, self.port = host, port
        self.model = LocalModel(keep_requests=keep_requests)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start_async(self) -> None:
        self._runner = web.AppRunner(self.model.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the port chosen for port 0

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> str:
        """Serve in a daemon thread; returns the base URL once it accepts connections."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.start_async())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.stop_async())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="localmodel", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("the local model did not start within 30 s")
        if failure:
            raise failure[0]
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
