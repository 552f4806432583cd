"""Peak memory of the trial running in this worker process, for its MLflow run.

On a GPU: the CUDA caching allocator's peak (``torch.cuda.max_memory_allocated``). On the
CPU: the process's peak resident set (Linux ``VmHWM``), reset at the start of each trial
(``/proc/self/clear_refs``) because Ray reuses a worker process for several trials. Where
neither reset nor ``/proc`` exists the process's lifetime peak is reported.
"""

from __future__ import annotations

import resource
import sys

import torch

_MB = 2**20


def reset_peak(device: str) -> None:
    """Start measuring this trial's peak from the memory in use now."""
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
    except OSError:
        pass


def peak_mb(device: str) -> float:
    """The peak memory since :func:`reset_peak`, in MiB (device memory on a GPU)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(device) / _MB
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / _MB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (_MB if sys.platform == "darwin" else 1024)
