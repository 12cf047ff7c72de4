"""What this CPU computes fast, so inference picks its path by the machine it runs on.

Why: machines of one kind differ from day to day (some AVX2 only, some AVX-512 with VNNI, BF16 and AMX).
Dynamic int8 in ONNX Runtime doubles the title transformer's speed where the CPU has int8 dot-product
units (VNNI, AMX) and gains little where it has not (AVX2: 1.28x, measured), so int8 is the default only
where those units are present (:func:`int8_is_fast`); mixed bfloat16 training likewise (:func:`bf16_is_fast`).
Every path still runs anywhere; only the speed differs.
"""

from __future__ import annotations

import functools
from pathlib import Path

INT8_UNITS = ("avx512_vnni", "avx_vnni", "amx_int8")   # int8 dot products ONNX Runtime's int8 kernels use
BF16_UNITS = ("avx512_bf16", "amx_bf16")
_NUMPY_NAMES = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni", "AVX512BF16": "avx512_bf16"}


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, lower case as Linux names them: /proc/cpuinfo where it exists, else the
    subset numpy detects (macOS, Windows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    from numpy._core._multiarray_umath import __cpu_features__
    return frozenset(name for key, name in _NUMPY_NAMES.items() if __cpu_features__.get(key))


def int8_is_fast() -> bool:
    """Whether the CPU has int8 dot-product units (VNNI or AMX)."""
    return any(unit in cpu_flags() for unit in INT8_UNITS)


def bf16_is_fast() -> bool:
    """Whether the CPU has bfloat16 units (AVX512-BF16 or AMX)."""
    return any(unit in cpu_flags() for unit in BF16_UNITS)


def cpu_summary() -> dict:
    """The flags that decide a path, for records and benchmarks."""
    flags = cpu_flags()
    return {"avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "int8_units": [u for u in INT8_UNITS if u in flags], "bf16_units": [u for u in BF16_UNITS if u in flags]}
