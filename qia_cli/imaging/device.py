"""Pick the torch device and dtype that images render on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qia_cli.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICES = ("auto", "cuda", "mps", "cpu")


def _cuda_ok() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _mps_ok() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> tuple[str, torch.dtype]:
    """Map auto|cuda|mps|cpu (cuda:N too) to (device, dtype); fp16 on GPUs, fp32 on the CPU.

    fp16 rather than bf16 on CUDA: sd-turbo and most SD checkpoints ship fp16 weights.
    """
    import torch

    text = (name or "auto").strip().lower()
    base = text.split(":", 1)[0]
    if base not in DEVICES or (":" in text and base != "cuda"):
        raise UsageError(f"unknown device '{name}'", hint="use one of: " + ", ".join(DEVICES))
    if base == "auto":
        if _cuda_ok():
            return "cuda", torch.float16
        if _mps_ok():
            return "mps", torch.float16
        return "cpu", torch.float32
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
        return text, torch.float16
    if base == "mps":
        if not _mps_ok():
            raise UsageError(
                f"device '{name}' is not available here (torch sees no Apple MPS backend)",
                hint="use --device cpu or --device auto",
            )
        return "mps", torch.float16
    return "cpu", torch.float32
