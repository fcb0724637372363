"""Generated blocks inside hand-written Markdown pages.

A report command writes figures only: each table it owns sits between two identical markers,
``<!-- TOOL:NAME -->``, in a page whose prose people write. :func:`replace_blocks` swaps the
content between the markers and leaves every other line as it was; a block the page lacks is
added at its end, so a new page starts as the blocks alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def marker(tool: str, name: str) -> str:
    """The marker line around block ``name`` of ``tool`` (``<!-- encoder-report:table -->``)."""
    return f"<!-- {tool}:{name} -->"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def replace_blocks(text: str, tool: str, blocks: Mapping[str, str]) -> str:
    """``text`` with the content of each block replaced (blocks it lacks appended, in order).

    Raises:
        ValueError: A block's marker appears once or more than twice.
    """
    for name, content in blocks.items():
        mark = marker(tool, name)
        block = f"{mark}\n{content.strip()}\n{mark}"
        parts = text.split(mark)
        if len(parts) == 3:
            text = parts[0] + block + parts[2]
        elif len(parts) == 1:
            text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
        else:
            raise ValueError(f"{mark} must appear twice (around its block), not {len(parts) - 1}")
    return text


def write_blocks(path: Path, tool: str, blocks: Mapping[str, str]) -> None:
    """Replace the blocks in the page at ``path`` (created when missing)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_blocks(text, tool, blocks), encoding="utf-8")
