"""Rewrite the component table in README.md from the catalogue (``--check``: exit 1 if stale)."""

import pathlib
import sys

from optimlab.cli import markdown_table

START, END = "<!-- catalogue:start", "<!-- catalogue:end -->"


def render(text: str) -> str:
    head, rest = text.split(START, 1)
    marker, _, tail = rest.partition("\n")
    _, _, after = tail.partition(END)
    return f"{head}{START}{marker}\n{markdown_table()}{END}{after}"


if __name__ == "__main__":
    path = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    text = path.read_text()
    new = render(text)
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    path.write_text(new)
