"""The values `--device` and `--dtype` (and the settings of the same names) accept, written once.

Typing only: the CLI imports this for completion and checks, so it must stay light.
"""

from __future__ import annotations

from typing import Literal, get_args

Device = Literal["auto", "cuda", "mps", "cpu"]
Dtype = Literal["auto", "fp32", "bf16", "fp16"]
DEVICES: tuple[str, ...] = get_args(Device)
DTYPES: tuple[str, ...] = get_args(Dtype)
