"""Staging an executed chapter for the book: papermill's injected-parameters cell (the
profile and any overrides) is kept but collapsed like the other plumbing.

    python -m bitnetlib.book.stage NOTEBOOK.ipynb ...
"""
import json
import os
import sys
from pathlib import Path


def hide_injected(path) -> None:
    """Tag the injected-parameters cell of ``path`` with hide-input (in place, atomically)."""
    path = Path(path)
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        hide_injected(p)
