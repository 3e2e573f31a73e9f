"""What this CPU can do natively: decides whether torch bf16 is fast here or emulated.

Without AVX-512 BF16 or AMX, torch runs bf16 matrix products through slow emulation
(slower than fp32), so auto selection must not pick ``torch-bf16`` on such machines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# Either instruction set multiplies bf16 matrices in hardware (oneDNN uses both).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo``; empty where unreadable."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            return frozenset(value.split())
    return frozenset()


def has_native_bf16(flags: Iterable[str] | None = None) -> bool:
    """True when the CPU multiplies bf16 in hardware. ``flags`` overrides detection (tests)."""
    found = frozenset(flags) if flags is not None else cpu_flags()
    if found:
        return bool(found & BF16_FLAGS)
    # No /proc/cpuinfo (macOS, some containers): torch's own dispatch level is the best hint,
    # and only its AMX level implies bf16 for certain; plain AVX512 may lack the bf16 subset.
    try:
        import torch

        return "AMX" in torch.backends.cpu.get_cpu_capability().upper()
    except Exception as exc:  # torch missing or too old: assume no bf16, which is safe
        log.info("cannot tell whether this CPU has native bf16 (%s); assuming not", exc)
        return False


__all__ = ["BF16_FLAGS", "cpu_flags", "has_native_bf16"]
