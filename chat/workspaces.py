"""A chat session's workspace: the folder its copilot works in, and what it may hold (MAX_WORKSPACE_BYTES).

The file tools (chat.engine.policy), the files API and the deletion of a session all go through here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from claude_agent_sdk import project_key_for_directory

from core.conf import copilot_setting


def workspace_path(session_id: object) -> Path:
    """The workspace folder of a session (not created)."""
    return Path(copilot_setting("WORKSPACES_DIR")) / str(session_id)


def workspace_for(session_id: object) -> Path:
    """The workspace folder of a session, created when missing."""
    path = workspace_path(session_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def transcript_project_key(session_id: object) -> str:
    """The SDK's project key of the session's conversations: the CLI keys them by its working folder."""
    return project_key_for_directory(workspace_path(session_id))


def workspace_bytes(root: Path) -> int:
    """The size of every regular file under `root`; links are not followed (nor counted)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue  # removed meanwhile
            if not os.path.islink(os.path.join(folder, name)):
                total += info.st_size
    return total


def room_left(root: Path) -> int:
    """How many more bytes the workspace may hold (negative when it is already over its quota)."""
    return copilot_setting("MAX_WORKSPACE_BYTES") - workspace_bytes(root)


def delete_workspace(session_id: object) -> None:
    shutil.rmtree(workspace_path(session_id), ignore_errors=True)
