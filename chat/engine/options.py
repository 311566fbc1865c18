"""Builds the Claude Agent SDK options for a turn: model endpoint, tools, workspace, conversation."""

from __future__ import annotations

import logging
from pathlib import Path

from claude_agent_sdk import ClaudeAgentOptions

from agents.copilot_tools import COPILOT_TOOL_NAMES, SERVER_NAME, build_copilot_server
from chat.conf import copilot_setting
from chat.engine.session_store import DjangoSessionStore

logger = logging.getLogger("chat.engine.cli")


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


def workspace_for(session_id: str) -> Path:
    path = Path(copilot_setting("WORKSPACES_DIR")) / str(session_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def turn_options(*, session_id: str, sdk_session_id: str = "") -> ClaudeAgentOptions:
    Path(copilot_setting("CLI_HOME_DIR")).mkdir(parents=True, exist_ok=True)
    return ClaudeAgentOptions(
        model=copilot_setting("MODEL"),
        system_prompt=copilot_setting("SYSTEM_PROMPT"),
        tools=[],  # no built-in tools; the copilot's own are granted below
        mcp_servers={SERVER_NAME: build_copilot_server()},
        allowed_tools=list(COPILOT_TOOL_NAMES),
        include_partial_messages=True,
        setting_sources=[],
        cwd=str(workspace_for(session_id)),
        resume=sdk_session_id or None,
        session_store=DjangoSessionStore(),  # the conversation continues in whichever process runs the next turn
        env=model_environment(),
        stderr=lambda line: logger.info("session=%s cli: %s", session_id, line),
    )
