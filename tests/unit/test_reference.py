"""docs/directives.md is generated from the keyword table and kept current."""

import subprocess
import sys
from pathlib import Path

from haply.config import reference
from haply.config.keywords import KEYWORDS

ROOT = Path(__file__).resolve().parents[2]


def test_directives_md_is_current():
    result = subprocess.run([sys.executable, "-m", "haply.config.reference", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr


def test_check_fails_on_a_stale_file(tmp_path):
    stale = tmp_path / "directives.md"
    stale.write_text("old\n")
    assert reference.main(["--check", "--output", str(stale)]) == 1
    assert reference.main(["--output", str(stale)]) == 0
    assert reference.main(["--check", "--output", str(stale)]) == 0


def test_every_keyword_is_documented():
    text = reference.render()
    for name in KEYWORDS:
        assert f"| `{name}` |" in text, name
    assert "| `contimeout` | defaults, listen, backend | `<time>` |" in text
    assert "`timeout connect`" in text
