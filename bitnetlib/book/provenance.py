"""Where and when a result was computed: commit, date, machine, wall time."""
import datetime
import hashlib
import platform
import subprocess
import time
from pathlib import Path

import torch

from ..training.data import REPO_ROOT
from ..training.rundir import resolve_device


def git_commit() -> str:
    """HEAD's short hash, with '+dirty' when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD") or "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def device_name(device: str = "auto") -> str:
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    cpu = platform.machine()
    try:
        names = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"cpu ({cpu}, {torch.get_num_threads()} torch threads)"


def provenance(profile: str, started: float, device: str = "auto") -> dict:
    """Commit, date, device, profile and wall time (seconds since ``started``)."""
    return {"commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "device": device_name(device), "profile": profile,
            "torch": torch.__version__,
            "wall time": f"{time.perf_counter() - started:.1f} s"}


# The sources that decide what a training run computes (its config is in its key).
TRAINING_SOURCES = ("bitnetlib/training", "bitnetlib/wtypes.py")


def _git(*args) -> str:
    out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=30)
    if out.returncode:
        raise OSError(out.stderr.strip() or f"git {args[0]} failed")
    return out.stdout


def training_source_id(commit=None):
    """A hash of the training sources at ``commit`` (None: the working tree), from git's
    blob ids; None where git or the commit is unavailable (e.g. a shallow clone)."""
    try:
        if commit:
            blobs = [l.split(None, 3)[2:] for l in
                     _git("ls-tree", "-r", commit.split("+")[0], "--", *TRAINING_SOURCES).splitlines()]
            pairs = sorted((path, sha) for sha, path in blobs)
        else:
            paths = _git("ls-files", "--", *TRAINING_SOURCES).split()
            shas = _git("hash-object", "--", *paths).split()
            pairs = sorted(zip(paths, shas))
    except (OSError, subprocess.SubprocessError):
        return None
    return hashlib.sha256(repr(pairs).encode()).hexdigest()[:16]


def changed_training_files(commits) -> list:
    """The training sources that differ between any of ``commits`` and the working tree
    (file names), [] where git cannot tell."""
    names = set()
    for c in commits:
        try:
            out = _git("diff", "--name-only", c.split("+")[0], "--", *TRAINING_SOURCES)
        except (OSError, subprocess.SubprocessError):
            continue
        names.update(Path(l).name for l in out.split())
    return sorted(names)


def runs_note(runs: dict) -> str:
    """Markdown: when, where and at which commits the runs a chapter read were computed,
    and a visible note for runs whose training code differs from the code here.
    ``runs``: {key: run.json dict} (``cache.RUNS_READ``)."""
    if not runs:
        return ""
    dates = sorted(r["date"] for r in runs.values() if r.get("date"))
    machines = sorted({r.get("machine", "?") for r in runs.values()})
    commits = sorted({r.get("commit", "unknown") for r in runs.values()})
    text = (f"Runs read: {len(runs)} from the results store, computed "
            f"{dates[0]} to {dates[-1]} on {'; '.join(machines)}, at commit(s) "
            f"{', '.join(commits)}." if dates else "")
    here = training_source_id()
    stale = [c for c in commits if here is None or training_source_id(c) != here]
    if stale:
        files = changed_training_files(stale) if here else []
        text += (f"\n\n> **Note:** the runs of commit(s) {', '.join(stale)} were computed by "
                 f"training code ({', '.join(TRAINING_SOURCES)}) other than this checkout's"
                 f"{'' if here else ' (git unavailable: not checked)'}"
                 f"{': files changed since: ' + ', '.join(files) if files else ''}. Options added "
                 f"since leave older configurations' keys and runs as they were; removing their "
                 f"entries from `results/runs` and running `make results` recomputes them.")
    return text
