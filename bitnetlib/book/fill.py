"""Filling the results store with every run the chapters need at ``full``.

Which runs a chapter needs is learned by running it: each chapter is executed at
``full`` with training off (``BITNET_TRAIN=0``); a run it asks for and the store
lacks stops it with ``MissingRuns``, and is written to a list (``BITNET_WANTED``). The
listed runs are computed on Dask (``compute.compute``) and published, and the chapters
that stopped run again, until every chapter runs through (a chapter whose runs depend
on earlier runs, e.g. pruning a trained model, needs one pass per step) or a pass
adds nothing. The executed chapters land in _build/notebooks, like ``make book-run``.
"""
import json
import os
from pathlib import Path

from ..training.config import make_config
from ..training.data import REPO_ROOT
from . import compute
from .stage import hide_injected

NB_DIR = REPO_ROOT / "_build" / "notebooks"


def run_chapter(name: str, wanted: Path, log=print) -> bool:
    """Execute one chapter at full with training off; True when it ran through."""
    import jupytext
    import papermill
    from nbclient.exceptions import DeadKernelError
    NB_DIR.mkdir(parents=True, exist_ok=True)
    src = NB_DIR / f"{name}.src.ipynb"
    jupytext.write(jupytext.read(REPO_ROOT / "notebooks" / f"{name}.py"), src)
    env = {"BITNET_TRAIN": "0", "BITNET_WANTED": str(wanted), "BITNET_PUBLISH": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(str(src), str(NB_DIR / f"{name}.ipynb"), kernel_name="python3",
                                   parameters=dict(profile="full"), progress_bar=False,
                                   cwd=str(REPO_ROOT / "notebooks"))
        hide_injected(NB_DIR / f"{name}.ipynb")
        return True
    except papermill.PapermillExecutionError as e:
        log(f"{name}: stopped ({e.ename}: {str(e.evalue).splitlines()[0][:200]})")
        return False
    except DeadKernelError as e:            # killed, or out of memory: the others go on
        log(f"{name}: stopped (its kernel died: {str(e).splitlines()[0][:200]})")
        return False
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
        src.unlink(missing_ok=True)


def fill(chapters, scheduler=None, workers=None, passes: int = 8, log=print) -> list:
    """Run ``chapters`` until they all run through on stored runs; returns the chapters
    that still stop (for a reason other than a missing run, or out of passes)."""
    todo = list(chapters)
    wanted = NB_DIR / "wanted.jsonl"
    for i in range(passes):
        NB_DIR.mkdir(parents=True, exist_ok=True)
        wanted.write_text("")
        todo = [c for c in todo if not run_chapter(c, wanted, log)]
        cfgs = [make_config(json.loads(l), "wanted") for l in wanted.read_text().splitlines()]
        log(f"pass {i + 1}: {len(todo)} chapter(s) stopped, {len(cfgs)} run(s) wanted")
        if not todo or not cfgs:
            break
        for key, state in compute.compute(cfgs, scheduler, workers).items():
            if state != "done":
                log(f"run {key}: {state}")
    return todo
