"""The import contracts (.importlinter) hold, and each breaks when an import that violates it is added."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

PACKAGES = ["core", "chat", "agents", "agent_protocol", "localmodel", "ops", "copilot_site"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# contract id -> (a module of the tree, an import that breaks the contract there)
VIOLATIONS = {
    "core-is-the-floor": ("core/conf.py", "import chat.models"),
    "domains-meet-through-interfaces": ("chat/selectors.py", "import agents.selectors"),
    "engine-no-transport": ("chat/engine/runner.py", "import chat.consumers"),
    "events-no-engine": ("chat/events/log.py", "import chat.engine.policy"),
    "models-at-the-bottom": ("chat/models/sessions.py", "import chat.selectors"),
    "local-model-stands-alone": ("localmodel/script.py", "import core.conf"),
    "site-on-top": ("agents/views.py", "import copilot_site.urls"),
    "ops-watches-from-outside": ("chat/engine/runner.py", "import ops.metrics"),
    "agent-protocol-on-top-of-chat": ("chat/selectors.py", "import agent_protocol.views"),
    "agent-protocol-through-interfaces": ("agent_protocol/views.py", "import chat.consumers"),
}


def contracts() -> list[str]:
    config = configparser.ConfigParser()
    config.read(PROJECT_DIR / ".importlinter")
    return [section.split(":", 2)[2] for section in config.sections() if section.startswith("importlinter:contract:")]


def lint(tree: Path, contract: str | None = None) -> subprocess.CompletedProcess:
    command = [str(LINT_IMPORTS), "--no-cache"] + (["--contract", contract] if contract else [])
    return subprocess.run(command, cwd=tree, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                                                   "PYTHONPATH": str(tree)})


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(PROJECT_DIR / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_DIR / ".importlinter", copy / ".importlinter")
    return copy


def test_every_contract_holds(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


def test_every_contract_is_tested_here():
    assert sorted(contracts()) == sorted(VIOLATIONS)


@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_a_violating_import_breaks_its_contract(tree, contract):
    path, violation = VIOLATIONS[contract]
    module = tree / path
    original = module.read_text()
    module.write_text(original + f"\n{violation}  # noqa\n")
    try:
        result = lint(tree, contract)
    finally:
        module.write_text(original)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
