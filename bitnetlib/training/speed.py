"""Things that make a training run faster on a CPU without changing what it computes.

- ``keep_freed_memory``: glibc hands every freed block above 128 KB straight back to
  the kernel, so each step's activations (a CNN's are megabytes) are page-faulted in
  again; in a VM a page fault costs microseconds, and a step of the 64-channel CNN spent
  a third of its time in them. Keeping freed memory in the process changes no value.
- ``EpochPrefetch``: the next epoch's augmented images are drawn in a background
  thread while this epoch trains (a second core does the augmentation). An epoch's data
  is a pure function of (config, epoch), so when it is computed does not matter.
(The eager CNN's NHWC maps are set in ``layers.BitConv2d``.)
"""
import ctypes
import ctypes.util
import os
from concurrent.futures import ThreadPoolExecutor

import torch

from .schedule import epoch_data, epoch_generator

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3      # glibc mallopt parameters
_tuned = False


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds (once per process; no-op elsewhere)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)    # glibc's largest allowed value
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):                # not glibc: nothing to tune
        pass


class EpochPrefetch:
    """``get(epoch)`` returns ``epoch_data`` of that epoch and starts drawing the next
    epoch's (up to ``last``) in a background thread, one torch thread, when a core is
    left over (training on fewer torch threads than there are cores); else on demand:
    more threads than cores make every parallel op wait for a descheduled thread."""

    def __init__(self, cfg, data, device, last: int):
        self.cfg, self.data, self.device, self.last = cfg, data, device, last
        spare = torch.get_num_threads() < (os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="epoch-data",
                                        initializer=torch.set_num_threads,
                                        initargs=(1,)) if spare else None
        self._pending = {}

    def _compute(self, epoch: int):
        return epoch_data(self.cfg, self.data, epoch_generator(self.cfg, epoch, self.device))

    def get(self, epoch: int):
        fut = self._pending.pop(epoch, None)
        out = fut.result() if fut is not None else self._compute(epoch)
        self._pending.clear()                    # a skipped epoch's data is dropped
        if self._pool is not None and epoch + 1 < self.last:
            self._pending[epoch + 1] = self._pool.submit(self._compute, epoch + 1)
        return out

    def close(self):
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

