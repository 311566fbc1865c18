"""`llm {prompt, system?, max_tokens?}`: one completion from the configured model (the Messages API, no streaming)."""

import httpx

from agents.blocks import Block, BlockError, register
from core.conf import copilot_setting

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1_024
MAX_MAX_TOKENS = 32_000
TIMEOUT_SECONDS = 300


def _api_error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return f"{error.get('type', 'error')}: {error['message']}"
    return response.text[:500] or response.reason_phrase


async def run(block_input: dict) -> dict:
    prompt = block_input.get("prompt")
    system = block_input.get("system")
    max_tokens = block_input.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(prompt, str) or not prompt.strip():
        raise BlockError("llm: prompt must be a non-empty string")
    if system is not None and not isinstance(system, str):
        raise BlockError("llm: system must be a string")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_MAX_TOKENS:
        raise BlockError(f"llm: max_tokens must be a whole number from 1 to {MAX_MAX_TOKENS}")

    body = {"model": copilot_setting("MODEL"), "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}]}
    if system:
        body["system"] = system
    base_url = (copilot_setting("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    headers = {"x-api-key": copilot_setting("ANTHROPIC_API_KEY") or "", "anthropic-version": API_VERSION}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            response = await client.post(f"{base_url}/v1/messages", json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise BlockError(f"llm: cannot reach the model at {base_url}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise BlockError(f"llm: the model API answered {response.status_code}: {_api_error_message(response)}")
    try:
        content = response.json()["content"]
        text = "".join(part["text"] for part in content if part.get("type") == "text")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BlockError("llm: the model API answered with something that is not a message") from None
    return {"text": text}


register(Block(
    name="llm",
    description="Ask the configured model one question (an optional system prompt too) and return its text answer.",
    input_schema={"type": "object",
                  "properties": {"prompt": {"type": "string", "description": "what to ask the model"},
                                 "system": {"type": "string", "description": "instructions for the model"},
                                 "max_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_TOKENS,
                                                "description": "the longest answer, in tokens"}},
                  "required": ["prompt"]},
    output_schema={"type": "object", "properties": {"text": {"type": "string"}}},
    run=run,
))
