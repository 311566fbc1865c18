"""Builds the Claude Agent SDK options for a session's CLI: model endpoint, tools, workspace, conversation."""

from __future__ import annotations

import functools
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import claude_agent_sdk
from claude_agent_sdk import ClaudeAgentOptions

from chat.engine.binding import SessionBinding
from chat.engine.policy import ToolGate, TurnLimits, TurnState, builtin_tools
from chat.engine.session_store import DjangoSessionStore
from chat.engine.tools import SERVER_NAME, ToolContext, build_copilot_server
from chat.workspaces import workspace_for
from core.conf import copilot_setting

logger = logging.getLogger("chat.engine.cli")

# The SDK runs this script, which runs the real CLI with only the variables below and those of model_environment().
CLI_WRAPPER = Path(__file__).with_name("cli_with_clean_env.sh")
CLI_ENV_PASSTHROUGH = (
    "PATH", "HOME", "PWD", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME",
    # The way to the model: a proxy, a private certificate authority.
    "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
    # The turn's trace (W3C trace context, which the SDK sets from the current span), and where the CLI sends its
    # own telemetry when CLAUDE_CODE_ENABLE_TELEMETRY is on. Not the collector's headers: they may hold a secret.
    "TRACEPARENT", "TRACESTATE",
    "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)

# The largest message the SDK reads from the CLI (its default is 1 MiB). A transcript batch of several
# parallel calls with large outputs passes 1 MiB, and a message past the limit fails the whole turn.
SDK_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def model_environment() -> dict[str, str]:
    """Environment for the CLI: which model endpoint, bounded retries, no non-essential traffic."""
    env = {
        "ANTHROPIC_API_KEY": copilot_setting("ANTHROPIC_API_KEY"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": str(copilot_setting("MODEL_RETRIES")),
        "CLAUDE_CONFIG_DIR": str(Path(copilot_setting("CLI_HOME_DIR"))),
    }
    base_url = copilot_setting("ANTHROPIC_BASE_URL")
    if base_url:
        env["ANTHROPIC_BASE_URL"] = base_url
    return env


@functools.cache
def real_cli_path() -> str:
    """The CLI the SDK itself would run: the one bundled with it, else `claude` on PATH."""
    bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    if bundled.is_file():
        return str(bundled)
    on_path = shutil.which("claude")
    if on_path is None:
        raise RuntimeError("Claude Code CLI not found: neither bundled with claude-agent-sdk nor on PATH")
    return on_path


def cli_environment() -> dict[str, str]:
    """What ClaudeAgentOptions.env holds: the model's environment, and what the wrapper needs to keep only that."""
    env = model_environment()
    return {**env, "COPILOT_CLI": real_cli_path(), "COPILOT_CLI_KEEP_ENV": " ".join([*CLI_ENV_PASSTHROUGH, *env])}


def tool_gate(*, session_id: str, turn_id: str = "") -> ToolGate:
    """The policy's record of one turn's calls (chat.engine.policy decides every call; nothing is pre-allowed)."""
    return ToolGate(session_id=session_id, turn_id=turn_id, workspace=workspace_for(session_id),
                    state=TurnState(limits=TurnLimits.from_settings()))


@dataclass(frozen=True)
class ConversationPoint:
    """Where a CLI picks a session's conversation up, and under what terms: what a client was connected with.

    A connected client serves later turns only while their point is its own (chat.engine.warm)."""

    sdk_session_id: str = ""  # the SDK conversation to continue ("" for a new one)
    resume_session_at: str | None = None  # continue it from this entry only (a branch)…
    fork_session: bool = False  # …as a new SDK session, leaving the old one as it was
    max_budget_usd: float | None = None  # what the CLI may spend, from its start

    @property
    def branches(self) -> bool:
        """Whether a CLI connected here starts from a branch of the conversation (no warm CLI can serve that)."""
        return self.resume_session_at is not None or self.fork_session


def session_options(*, session_id: str, owner_id: int | None, binding: SessionBinding, model: str = "",
                    point: ConversationPoint = ConversationPoint()) -> ClaudeAgentOptions:
    """The SDK's options for a session's CLI, which may serve many of its turns: every callback goes through
    `binding` to the turn it serves (chat.engine.binding); `model` defaults to MODEL."""
    Path(copilot_setting("CLI_HOME_DIR")).mkdir(parents=True, exist_ok=True)
    workspace = workspace_for(session_id)
    limits = TurnLimits.from_settings()
    resuming = bool(point.sdk_session_id)
    return ClaudeAgentOptions(
        model=model or copilot_setting("MODEL"),
        max_budget_usd=point.max_budget_usd,
        resume=point.sdk_session_id or None,
        resume_session_at=point.resume_session_at if resuming else None,
        fork_session=point.fork_session and resuming,
        system_prompt=copilot_setting("SYSTEM_PROMPT"),
        tools=builtin_tools(limits),  # the file tools and what a setting grants; no shell, no web
        mcp_servers={SERVER_NAME: build_copilot_server(ToolContext(session_id=session_id, owner_id=owner_id),
                                                       binding)},
        strict_mcp_config=True,  # no other MCP server, whatever a config file in the workspace says
        hooks=binding.hooks(),
        can_use_tool=binding.can_use_tool,
        include_partial_messages=True,
        setting_sources=[],
        cwd=str(workspace),
        session_store=DjangoSessionStore(),  # the conversation continues in whichever process runs the next turn
        session_store_flush="eager",  # mirrored as it happens, so a process that dies mid-turn loses none of it
        max_buffer_size=SDK_MAX_MESSAGE_BYTES,
        cli_path=str(CLI_WRAPPER),
        env=cli_environment(),
        stderr=lambda line: logger.info("session=%s cli: %s", session_id, line),
    )
