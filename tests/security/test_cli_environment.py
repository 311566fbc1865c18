"""The CLI subprocess gets only the environment it needs: no database URL, Django secret key or other secret."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid

import pytest

from agents.blocks import Block, register
from chat.engine.options import CLI_ENV_PASSTHROUGH, CLI_WRAPPER, model_environment, real_cli_path
from chat.engine.registry import begin_turn, running_turns
from tests.factories import EventWatcher, assert_turn_well_formed, script

SERVER_SECRETS = {
    "DATABASE_URL": "postgres://copilot:db-password-1f3a@db.internal:5432/copilot",
    "DJANGO_SECRET_KEY": "django-secret-key-9c2e",
    "REDIS_URL": "redis://:redis-password-77b1@redis.internal:6379/0",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-5d0c",
}


def process_environment(pid: int) -> dict[str, str]:
    raw = open(f"/proc/{pid}/environ", "rb").read()
    return dict(entry.decode().split("=", 1) for entry in raw.split(b"\0") if entry)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_the_running_cli_holds_no_secret_and_the_turn_works(chat, monkeypatch, local_model):
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    release = asyncio.Event()

    async def hold(block_input):
        await asyncio.wait_for(release.wait(), timeout=30)
        return {"released": True}

    block_name = f"hold-{uuid.uuid4().hex[:8]}"
    register(Block(name=block_name, description="Waits until the test lets go (test only).",
                   input_schema={"type": "object"}, output_schema={"type": "object"}, run=hold))

    async with EventWatcher(chat.session.id) as watcher:
        await begin_turn(session=chat.session, client_message_id=uuid.uuid4(), text=script(
            {"tools": [{"name": "mcp__copilot__run_block", "input": {"block": block_name, "input": {}}}]},
            {"text": "Held and released."}))
        await watcher.until(lambda chunk: chunk["type"] == "tool-input-available")
        cli_pid = running_turns._runners[str(chat.session.id)].cli_pid
        environment = process_environment(cli_pid)
        executable = os.readlink(f"/proc/{cli_pid}/exe")
        release.set()
        events = await watcher.until_finish()

    assert executable == os.path.realpath(real_cli_path())  # the wrapper became the CLI: same pid
    for name, value in SERVER_SECRETS.items():
        assert name not in environment
        assert not any(value in v for v in environment.values()), name
    allowed = set(CLI_ENV_PASSTHROUGH) | set(model_environment())
    unexpected = {name for name in environment
                  if name not in allowed and not name.startswith(("CLAUDE_CODE_", "CLAUDE_AGENT_SDK_"))}
    assert not unexpected, unexpected
    assert environment["ANTHROPIC_BASE_URL"] == local_model.url
    assert environment["CLAUDE_CONFIG_DIR"] == model_environment()["CLAUDE_CONFIG_DIR"]
    assert environment["PATH"] == os.environ["PATH"]
    assert_turn_well_formed(events)
    assert events[-2]["chunk"]["data"]["status"] == "completed"
    assert [e["chunk"]["output"] for e in events if e["chunk"]["type"] == "tool-output-available"] == [
        {"released": True}]


def test_the_wrapper_keeps_exactly_the_variables_it_is_told_to():
    environment = {
        "PATH": os.environ["PATH"], "KEEP_ME": "line one\nSECRET_TOO=not a variable", "DROP_ME": "secret",
        "CLAUDE_CODE_SOMETHING": "kept by prefix", "CLAUDE_AGENT_SDK_VERSION": "1.0",
        "COPILOT_CLI": "/usr/bin/env", "COPILOT_CLI_KEEP_ENV": "PATH KEEP_ME NOT_SET 1BAD a;b *",
    }
    # The "CLI" here is env itself, given the argument -0: it prints the environment it got, NUL-separated.
    printed = subprocess.run([str(CLI_WRAPPER), "-0"], env=environment, capture_output=True, check=True,
                             cwd=CLI_WRAPPER.parent).stdout
    got = dict(entry.decode().split("=", 1) for entry in printed.split(b"\0") if entry)
    assert got == {name: environment[name]
                   for name in ["PATH", "KEEP_ME", "CLAUDE_CODE_SOMETHING", "CLAUDE_AGENT_SDK_VERSION"]}
