"""The README's two set-up commands are the ones that exist and that CI runs.

CI runs `.ci/run`, which must run exactly the README's test command, so that a
green CI means the documented command works on a fresh machine.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block, "README.md starts with a ```sh block of set-up commands"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()
            if line.strip()]


def test_readme_has_exactly_two_setup_commands():
    commands = setup_commands()
    assert len(commands) == 2, commands
    assert "haply quickstart" in commands[0]


def test_ci_runs_the_readme_test_command():
    test_command = setup_commands()[1]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-1] == test_command, (ci[-1], test_command)
    script = ROOT / test_command.split()[0]
    assert script.is_file() and script.stat().st_mode & 0o111, f"{script} is executable"


def test_ci_script_is_strict_bash():
    text = (ROOT / ".ci" / "run").read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
