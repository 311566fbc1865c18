"""The runtime requirements alone (requirements.txt, what `./dev serve` installs) import every app module and pass
`manage.py check`: a module that needs a test-only package would crash the first command on a fresh machine.

CI passes the fresh venv its first-command run built (COPILOT_RUNTIME_VENV); elsewhere one is built here from
requirements.txt and kept under var/ for the next run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

APP_PACKAGES = ["core", "chat", "agents", "agent_protocol", "localmodel", "ops", "copilot_site"]
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys, django
django.setup()
failed = []
for package in sys.argv[1:]:
    root = importlib.import_module(package)
    for module in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        try:
            importlib.import_module(module.name)
        except Exception as exc:
            failed.append(f"{module.name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed) or "every module imported")
sys.exit(1 if failed else 0)
"""

pytestmark = pytest.mark.e2e


def runtime_venv() -> Path:
    given = os.environ.get("COPILOT_RUNTIME_VENV")
    if given:
        return Path(given)
    requirements = (PROJECT_DIR / "requirements.txt").read_bytes()
    venv = PROJECT_DIR / "var" / f"runtime-venv-{hashlib.sha256(requirements).hexdigest()[:12]}"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(PROJECT_DIR / "requirements.txt")], check=True, capture_output=True)
        (venv / ".complete").touch()
    return venv


def test_the_runtime_requirements_import_every_app_module_and_pass_the_checks(tmp_path):
    python = runtime_venv() / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                               check=True).stdout.lower()
    assert "pytest" not in installed and "hypothesis" not in installed, "not a runtime-only venv"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "copilot_site.settings",
           "COPILOT_VAR_DIR": str(tmp_path)}
    imported = subprocess.run([str(python), "-c", IMPORT_EVERY_MODULE, *APP_PACKAGES], cwd=PROJECT_DIR, env=env,
                              capture_output=True, text=True)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    checked = subprocess.run([str(python), "manage.py", "check"], cwd=PROJECT_DIR, env=env, capture_output=True,
                             text=True)
    assert checked.returncode == 0 and "no issues" in checked.stdout, checked.stdout + checked.stderr
