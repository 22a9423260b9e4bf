"""
The CPU a measurement was taken on: its model name and the instruction sets that change speed.

INT8 and bf16 speed-ups depend on VNNI, AMX and AVX-512 more than on the model name, and one
model name ("AMD EPYC") covers CPUs with and without them, so a recorded speed-up is keyed by
both (:func:`cpu_key`). Torch-free; reads ``/proc/cpuinfo`` where there is one.
"""

from __future__ import annotations

import platform
from pathlib import Path

#: the instruction sets that decide int8/bf16 speed on x86 (as /proc/cpuinfo names them)
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
               "amx_bf16")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    """Return the CPU's model name (what every published figure is written beside)."""
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Return which of :data:`SPEED_FLAGS` this CPU has."""
    for line in _cpuinfo():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in SPEED_FLAGS if f in have]
    return []


def cpu_key() -> str:
    """Return the key a speed measurement is recorded under: model name and speed flags."""
    flags = cpu_flags()
    return f"{cpu_model()} [{' '.join(flags) if flags else 'no x86 vector flags'}]"
