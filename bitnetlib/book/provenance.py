"""Where and when a result was computed: commit, date, machine, wall time."""
import datetime
import platform
import subprocess
import time

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
