"""The code blocks of a Markdown document that tests run as written (README's Quick start, docs/tutorial.md).

A block is marked by an HTML comment on the line before its opening fence, invisible on GitHub and in
the docs site::

    <!-- tutorial: settings -->
    ```python
    ...
    ```

``fenced_blocks(path)`` returns every fenced block of the page with the line just before it, so that a test
can require that no block a reader types is left unmarked (and so unrun).

``labelled_blocks(path, "tutorial")`` returns ``{"settings": Block("python", "...")}``. A marker may name an
action before the label (``<!-- tutorial: write crm/views.py -->``): ``Block.action`` is then ``"write"``.
A label given twice, a marker not followed by a fenced block, or a block that never closes is an error:
the test then fails on the document, not on a half-read block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(r"^<!--\s*([\w.-]+):\s*(?:(\w+)\s+)?([\w./-]+)\s*-->\s*$")
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language (the word after the fence), its text as written, and the action
    its marker names before the label ("" when none)."""

    language: str
    text: str
    action: str = ""


def labelled_blocks(path: Path, prefix: str) -> dict[str, Block]:
    """The blocks of ``path`` marked ``<!-- {prefix}: <label> -->``, by label, in document order."""
    fenced = {block.line: block for block in fenced_blocks(path)}
    blocks: dict[str, Block] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        marker = MARKER.match(line)
        if not marker or marker.group(1) != prefix:
            continue
        action, label = marker.group(2) or "", marker.group(3)
        block = fenced.get(number + 1)  # its fence on the next line
        if block is None:
            raise ValueError(f"{path.name}: the marker {prefix}: {label} is not followed by a fenced code block")
        if label in blocks:
            raise ValueError(f"{path.name}: the label {prefix}: {label} is used twice")
        blocks[label] = Block(block.language, block.text, action)
    return blocks


@dataclass(frozen=True)
class Fenced:
    """A fenced code block anywhere on the page: its first line's number, its language, its text, and the
    marker comment just before its fence ("" when there is none)."""

    line: int
    language: str
    text: str
    marker: str


def fenced_blocks(path: Path) -> list[Fenced]:
    """Every fenced code block of ``path``, in order (a block that never closes is an error)."""
    lines = path.read_text().splitlines()
    found: list[Fenced] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        before = lines[index - 1].strip() if index else ""
        start, closing, body = index + 1, fence.group(1), []
        index += 1
        while index < len(lines) and lines[index].strip() != closing:
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise ValueError(f"{path.name}: the block at line {start} is not closed")
        index += 1
        marker = before if before.startswith("<!--") else ""
        found.append(Fenced(start, fence.group(2), "\n".join(body) + "\n", marker))
    return found
