"""A chat session's workspace: the folder its copilot works in, what it may hold (MAX_WORKSPACE_BYTES), and its
files for people: listing, uploading, reading and deleting them, with the file tools' own path checks.

The file tools (chat.engine.policy), the files API, Agent Protocol artifacts and the deletion of a session all go
through here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from claude_agent_sdk import project_key_for_directory

from core.conf import copilot_setting
from core.errors import ApplicationError, NotFound

# Why a path was refused (chat.engine.policy counts denials by these).
BAD_INPUT = "bad_input"
OUTSIDE_WORKSPACE = "outside_workspace"
NOT_A_FILE = "not_a_file"


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


def path_refusal(name: str, raw: object, workspace: Path) -> tuple[str, str] | None:
    """None when `raw`, resolved from the workspace with every symlink followed, is a file or folder inside it;
    else why not: (kind, reason). The file tools' rule (chat.engine.policy), and the files API's."""
    if not isinstance(raw, str) or not raw or "\0" in raw:
        return (BAD_INPUT, f"{name} must be a non-empty path")
    if raw.startswith("~"):
        return (OUTSIDE_WORKSPACE, f"{name} {raw!r} starts with '~': paths must stay inside this chat's workspace")
    if ".." in Path(raw).parts:
        return (OUTSIDE_WORKSPACE, f"{name} {raw!r} contains '..': paths must stay inside this chat's workspace")
    root = os.path.realpath(workspace)
    resolved = os.path.realpath(os.path.join(root, raw))
    if not is_inside(resolved, root):
        if is_inside(os.path.abspath(os.path.join(root, raw)), root):
            return (OUTSIDE_WORKSPACE, f"{name} {raw!r} is a link that leads outside this chat's workspace folder")
        return (OUTSIDE_WORKSPACE, f"{name} {raw!r} is outside this chat's workspace folder")
    try:
        mode = os.stat(resolved).st_mode
    except FileNotFoundError:
        return None  # a file about to be written; its folder is inside
    except OSError as exc:
        return (NOT_A_FILE, f"{name} {raw!r} cannot be used: {exc.strerror}")
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return (NOT_A_FILE, f"{name} {raw!r} is not a regular file or folder (devices, pipes and sockets are refused)")
    return None


def is_inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


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


# --- the files in a workspace, for people (the files API, Agent Protocol artifacts) ---

class BadPath(ApplicationError):
    code = "bad_path"
    http_status = 400


class WorkspaceFull(ApplicationError):
    code = "workspace_full"
    http_status = 413


class FileTooLarge(ApplicationError):
    code = "too_large"
    http_status = 413


@dataclass(frozen=True)
class WorkspaceFile:
    path: str  # relative to the workspace, with "/" between folders
    size: int
    modified_at: datetime


MAX_PATH_CHARS = 500


def resolved_file(session_id: object, relative: object, *, must_exist: bool = True) -> Path:
    """The file at `relative` inside the session's workspace, checked as the file tools' paths are
    (`path_refusal`: no `..`, `~`, absolute paths elsewhere, links out, devices); BadPath else."""
    if not isinstance(relative, str) or not relative.strip() or len(relative) > MAX_PATH_CHARS:
        raise BadPath(f"path: a relative path of at most {MAX_PATH_CHARS} characters is required")
    root = workspace_for(session_id)
    refused = path_refusal("path", relative, root)
    if refused is not None:
        raise BadPath(refused[1])
    target = Path(os.path.realpath(root / relative))
    if target == Path(os.path.realpath(root)):
        raise BadPath("path: names the workspace itself, not a file in it")
    if must_exist and not target.is_file():
        raise NotFound(f"no file {relative!r} in this chat's workspace")
    return target


def list_files(session_id: object) -> list[WorkspaceFile]:
    """Every regular file of the workspace (links not followed), by path."""
    root = workspace_path(session_id)
    found: list[WorkspaceFile] = []
    for folder, _, names in os.walk(root):
        for name in names:
            full = os.path.join(folder, name)
            try:
                info = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.append(WorkspaceFile(path=os.path.relpath(full, root).replace(os.sep, "/"), size=info.st_size,
                                           modified_at=datetime.fromtimestamp(info.st_mtime, tz=UTC)))
    return sorted(found, key=lambda file: file.path)


def save_file(session_id: object, relative: object, chunks: Iterable[bytes]) -> tuple[WorkspaceFile, str]:
    """Write a file from `chunks` (an upload) into the workspace, whole or not at all; returns it and its
    sha256. Refused past MAX_UPLOAD_BYTES (FileTooLarge) or past the workspace's MAX_WORKSPACE_BYTES
    (WorkspaceFull); nothing of it is left then. Never executable."""
    target = resolved_file(session_id, relative, must_exist=False)
    limit = copilot_setting("MAX_UPLOAD_BYTES")
    root = workspace_for(session_id)
    replaced = target.stat().st_size if target.is_file() else 0
    room = room_left(root) + replaced
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        with open(partial, "xb") as file:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise FileTooLarge(f"a file is at most {limit:,} bytes (MAX_UPLOAD_BYTES)")
                if size > room:
                    raise WorkspaceFull(f"this chat's workspace may hold {copilot_setting('MAX_WORKSPACE_BYTES'):,}"
                                        f" bytes and has {max(room, 0):,} left")
                digest.update(chunk)
                file.write(chunk)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    info = target.stat()
    relative_path = os.path.relpath(target, os.path.realpath(root)).replace(os.sep, "/")
    return WorkspaceFile(relative_path, info.st_size, datetime.fromtimestamp(info.st_mtime, tz=UTC)), \
        digest.hexdigest()


def delete_file(session_id: object, relative: object) -> None:
    resolved_file(session_id, relative).unlink()
