"""Command-line helper shared by the generators of napari.yaml and docs/filters.md."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def write_or_print(render: Callable[[], str], default_path: Path, argv=None) -> int:
    """``--write [PATH]`` writes ``render()`` to PATH (default ``default_path``); else print it."""
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if argv and argv[0] == "--write":
        path = Path(argv[1]) if len(argv) > 1 else default_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
