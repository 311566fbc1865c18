"""A chat's workspace files for people: saved whole or not at all, within their quotas, never outside the folder."""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from chat.workspaces import (
    BadPath,
    FileTooLarge,
    WorkspaceFull,
    delete_file,
    list_files,
    resolved_file,
    save_file,
    workspace_for,
)
from core.errors import NotFound


@pytest.fixture
def session_id(copilot_settings):
    return uuid.uuid4()


def test_a_file_is_saved_listed_read_and_deleted(session_id):
    saved, sha = save_file(session_id, "notes/plan.txt", [b"step one\n", b"step two\n"])
    assert (saved.path, saved.size) == ("notes/plan.txt", 18)
    assert sha == hashlib.sha256(b"step one\nstep two\n").hexdigest()
    assert [f.path for f in list_files(session_id)] == ["notes/plan.txt"]
    assert resolved_file(session_id, "notes/plan.txt").read_bytes() == b"step one\nstep two\n"
    assert oct(os.stat(resolved_file(session_id, "notes/plan.txt")).st_mode & 0o777) == "0o644"
    delete_file(session_id, "notes/plan.txt")
    assert list_files(session_id) == []
    with pytest.raises(NotFound):
        resolved_file(session_id, "notes/plan.txt")


@pytest.mark.parametrize("hostile", ["../escape.txt", "a/../../escape.txt", "~/.bashrc", "/etc/passwd", "", "   ",
                                     "x" * 600, "nul\0byte", 7])
def test_hostile_paths_are_refused_and_nothing_is_written(session_id, hostile):
    with pytest.raises(BadPath):
        save_file(session_id, hostile, [b"x"])
    assert list_files(session_id) == []


def test_a_link_out_of_the_workspace_is_refused(session_id, tmp_path):
    os.symlink(tmp_path, workspace_for(session_id) / "out")
    with pytest.raises(BadPath, match="link"):
        save_file(session_id, "out/secret.txt", [b"x"])
    assert not (tmp_path / "secret.txt").exists()


def test_uploads_past_their_limits_leave_nothing_behind(session_id, settings):
    settings.COPILOT = {**settings.COPILOT, "MAX_UPLOAD_BYTES": 10, "MAX_WORKSPACE_BYTES": 15}
    with pytest.raises(FileTooLarge):
        save_file(session_id, "big.bin", [b"x" * 6, b"x" * 6])
    save_file(session_id, "first.bin", [b"x" * 8])
    with pytest.raises(WorkspaceFull, match="has 7 left"):
        save_file(session_id, "second.bin", [b"x" * 8])
    assert [f.path for f in list_files(session_id)] == ["first.bin"]
    assert save_file(session_id, "first.bin", [b"y" * 10])[0].size == 10  # replacing frees what it replaces
