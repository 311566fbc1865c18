"""The Agent Protocol's client: `agent-protocol-client` from PyPI pins pydantic 1, which our venv cannot hold, so it
gets a venv of its own under tests/agent_protocol/.venv, made here on first use (or by `./dev test`)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

CLIENT_VENV = Path(__file__).parent / ".venv"
CLIENT_REQUIREMENT = "agent-protocol-client==1.1.0"


def client_python() -> Path:
    python = CLIENT_VENV / "bin" / "python"
    with open(str(CLIENT_VENV) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers: one of them makes it
        ready = python.exists() and subprocess.run([python, "-c", "import agent_protocol_client"],
                                                   capture_output=True).returncode == 0
        if not ready:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(CLIENT_VENV)], check=True)
            subprocess.run([python, "-m", "pip", "install", "-q", CLIENT_REQUIREMENT], check=True, timeout=600)
    return python


@pytest.fixture(scope="session")
def protocol_client() -> Path:
    return client_python()
