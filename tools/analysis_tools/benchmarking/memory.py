"""Peak memory growth of a process above a baseline.

On CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated at
:meth:`PeakMemory.start`. On CPU: the growth of the peak resident set size,
reset at :meth:`PeakMemory.start` by writing ``5`` to
``/proc/self/clear_refs`` and read as ``VmHWM`` from ``/proc/self/status``
(Linux); without that interface the growth of
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which cannot be reset and so
misses peaks below the import-time high-water mark. How freed memory
leaves the resident set depends on glibc malloc, see
:func:`..isolation.measure`.
"""
import re
import resource
from typing import Optional

import torch


def read_proc_status(key: str) -> Optional[int]:
    """Bytes of the ``kB`` field ``key`` of ``/proc/self/status`` (e.g.
    ``VmRSS``, ``VmHWM``); None without it."""
    try:
        with open('/proc/self/status') as f:
            match = re.search(rf'^{key}:\s+(\d+) kB', f.read(), re.M)
        return int(match.group(1)) * 1024 if match else None
    except OSError:
        return None


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory growth above the memory in use at :meth:`start` (see the
    module doc); :attr:`method` names how it was measured."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.method: Optional[str] = None
        self.base = 0

    def start(self) -> None:
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            self.method = 'cuda.max_memory_allocated'
            return
        base = None
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # reset VmHWM to the current VmRSS
            base = read_proc_status('VmRSS')
        except OSError:
            pass
        if base is None:
            self.base, self.method = _max_rss(), 'ru_maxrss'
        else:
            self.base, self.method = base, 'VmHWM'

    def peak(self) -> int:
        """Bytes of peak growth since :meth:`start`."""
        if self.method == 'cuda.max_memory_allocated':
            return torch.cuda.max_memory_allocated() - self.base
        if self.method == 'VmHWM':
            return read_proc_status('VmHWM') - self.base
        return _max_rss() - self.base
