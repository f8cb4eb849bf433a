"""What the CPU can do, for the two places where it changes results: bfloat16 speed and the low
bits of the backbone's float32 features.

oneDNN picks its kernels by instruction set, and kernels with another summation order round
differently: the same MobileNet, weights and images gave a different data/features on a CPU with
AMX/AVX512-BF16 than on one with AVX-512 alone (docs/design.md: "A cache keyed by content"). Runs on one
kind of CPU stay bit for bit identical.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The vector extensions oneDNN and Eigen dispatch on; other flags (security, virtualisation) do not
# change a result and would split the cache for nothing.
SIMD_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
              "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
              "amx_fp16", "asimd", "sve", "sve2")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The flags of the first CPU in /proc/cpuinfo (x86 "flags", Arm "Features"); None off Linux."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def native_bfloat16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """Whether the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); None if it cannot tell.
    Without it oneDNN emulates bfloat16, and mixed_bfloat16 trains several times slower than float32
    (docs/hardware.md), so a run that fitted in 30 minutes on one machine takes two hours on another."""
    flags = cpu_flags(cpuinfo)
    return None if flags is None else bool(flags & {"avx512_bf16", "amx_bf16"})


def simd_fingerprint(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """Architecture, vector extensions and oneDNN switch: what decides which kernels compute a vector."""
    flags = cpu_flags(cpuinfo)
    simd = " ".join(f for f in SIMD_FLAGS if f in flags) if flags is not None else platform.processor() or "unknown"
    return f"{platform.machine()}: {simd}; TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')}"


def cpu_kind(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The label every timing in docs/ carries: the CPU properties that change speed and bits.
    bfloat16 hardware decides whether the CNN presets fit 30 minutes; AMX (Intel) on top of
    AVX512-BF16 (also AMD's Zen 4) changes the kernels oneDNN picks, so the two are named apart."""
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return platform.machine()
    if not native_bfloat16(cpuinfo):
        return "no AVX512-BF16"
    return "AVX512-BF16+AMX" if "amx_tile" in flags else "AVX512-BF16, no AMX"
