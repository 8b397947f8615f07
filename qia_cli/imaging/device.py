"""Pick the torch device and dtype that images render on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qia_cli.choices import DEVICES, DTYPES
from qia_cli.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

_TORCH_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# CPU features with fast bf16 matrix math: Intel AMX (Sapphire Rapids on) and AVX-512 BF16
# (Cooper Lake, AMD Zen 4 on). Without them torch emulates bf16 and it runs slower than fp32.
BF16_FLAGS = frozenset({"amx_bf16", "amx_tile", "avx512_bf16"})


def _cuda_ok() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _mps_ok() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _torch_flags() -> set[str]:
    """torch's own probes (cpuinfo, plus the OS permission AMX needs); private API, so guarded."""
    try:
        import torch.cpu as tcpu
    except ImportError:
        return set()
    found = set()
    for flag, probe in (("amx_tile", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported")):
        fn = getattr(tcpu, probe, None)
        try:
            if fn is not None and fn():
                found.add(flag)
        except Exception:  # noqa: BLE001 - a probe that breaks means "don't know", not a crash
            pass
    return found


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags: /proc/cpuinfo (Linux) and torch's own probes."""
    from qia_cli import cpu

    return frozenset(cpu.flags() | _torch_flags())


def cpu_bf16_ok(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU does bf16 matrix math in hardware (AMX or AVX-512 BF16)."""
    return bool((cpu_flags() if flags is None else flags) & BF16_FLAGS)


def dtype_name(dtype: torch.dtype) -> str:
    """torch.bfloat16 -> 'bf16' (the names --dtype takes)."""
    text = str(dtype).removeprefix("torch.")
    return next((short for short, long in _TORCH_NAMES.items() if long == text), text)


def check_dtype(dtype: str | None) -> str:
    text = (dtype or "auto").strip().lower()
    if text not in DTYPES:
        raise UsageError(f"unknown dtype '{dtype}'", hint="use one of: " + ", ".join(DTYPES))
    return text


def resolve_dtype(device: str, dtype: str | None = "auto") -> torch.dtype:
    """auto: fp16 on a GPU (sd-turbo and most SD checkpoints ship fp16 weights), bf16 on a CPU with
    AMX or AVX-512 BF16, fp32 on any other CPU. An explicit fp32|bf16|fp16 is used as given."""
    import torch

    name = check_dtype(dtype)
    if name == "auto":
        if not device.startswith("cpu"):
            name = "fp16"
        else:
            name = "bf16" if cpu_bf16_ok() else "fp32"
    return getattr(torch, _TORCH_NAMES[name])


def resolve_device(name: str, dtype: str | None = "auto") -> tuple[str, torch.dtype]:
    """Map auto|cuda|mps|cpu (cuda:N too) and auto|fp32|bf16|fp16 to (device, torch dtype)."""
    import torch

    text = (name or "auto").strip().lower()
    base = text.split(":", 1)[0]
    check_dtype(dtype)
    if base not in DEVICES or (":" in text and base != "cuda"):
        raise UsageError(f"unknown device '{name}'", hint="use one of: " + ", ".join(DEVICES))
    if base == "auto":
        device = "cuda" if _cuda_ok() else "mps" if _mps_ok() else "cpu"
        return device, resolve_dtype(device, dtype)
    if base == "cuda":
        if not _cuda_ok():
            raise UsageError(
                f"device '{name}' is not available here (torch sees no CUDA GPU)",
                hint="use --device cpu or --device auto",
            )
        if ":" in text:
            index = text.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise UsageError(
                    f"device '{name}' is not available here (torch sees {torch.cuda.device_count()} CUDA GPU(s))"
                )
        return text, resolve_dtype(text, dtype)
    if base == "mps":
        if not _mps_ok():
            raise UsageError(
                f"device '{name}' is not available here (torch sees no Apple MPS backend)",
                hint="use --device cpu or --device auto",
            )
        return "mps", resolve_dtype("mps", dtype)
    return "cpu", resolve_dtype("cpu", dtype)


def gpu_memory(device: str) -> tuple[int, int] | None:
    """(free, total) bytes of the CUDA GPU `device` names ('cuda', 'cuda:1'); None for any other device or
    when torch cannot tell."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    try:
        free, total = torch.cuda.mem_get_info(torch.device(device))
    except (RuntimeError, AssertionError, ValueError):
        return None
    return int(free), int(total)
