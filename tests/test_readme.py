"""The README's component table is generated from the catalogue and must not go stale."""

import pathlib
import runpy

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_table_matches_catalogue():
    render = runpy.run_path(str(ROOT / "scripts" / "readme_table.py"))["render"]
    text = (ROOT / "README.md").read_text()
    assert render(text) == text, "README table is stale: run `python scripts/readme_table.py`"


def test_readme_gives_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "bash scripts/parity.sh" in text and "bash scripts/test.sh" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci
