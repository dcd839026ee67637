"""The README's test command works on a new machine: CI runs it word for word, and the suite
collects without torch (the dev extra leaves it out; a fresh venv has none)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Collection with torch's imports failing as on a machine without it (a finder, not None in
# sys.modules: scipy looks there for a torch module and would trip over None).
WITHOUT_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torch_pruning"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTorch())
import pytest
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"]))
"""


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^pip install -e '\.\[dev\]' && .+$", readme, re.MULTILINE)
    assert len(commands) == 1, "the README names one test command"
    return commands[0]


def test_ci_runs_the_readme_test_command_word_for_word():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"readme_tests() {{ {readme_test_command()}; }}" in ci
    runs = [line for line in ci.splitlines() if line.strip() == "readme_tests"]
    assert len(runs) == 2, "once as a new user, once in the full environment"


def test_every_test_module_collects_on_a_machine_without_torch():
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOT_REQUIRE_")}
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = "\n".join(done.stdout.splitlines()[-15:])
    assert done.returncode == 0, f"collection without torch failed:\n{tail}\n{done.stderr[-2000:]}"
    assert "error" not in done.stdout.splitlines()[-1], tail
