"""What the machine's CPU can do that changes a default: native bfloat16 arithmetic."""

import functools
import platform


@functools.cache
def cpu_has_native_bfloat16() -> bool:
    """Whether the CPU multiplies bfloat16 natively (x86: AVX-512 BF16 or AMX; Arm: the BF16 extension), read from
    Linux's /proc/cpuinfo; False where that file is missing. On a CPU without it, PyTorch emulates bfloat16, which
    is slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = {word for line in f if line.lower().startswith(("flags", "features")) for word in line.split()}
    except OSError:
        return False
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "bf16" in flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)
