"""What one render is: the prompt, the model and every setting, as the agent composed them. The renderer reads
it, and the image's metadata and sidecar record it. Part of the plan contract (`qia generate --json`), which
names it `qia_cli.agent.types.RenderSpec`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RenderSpec(BaseModel):
    prompt: str
    negative_prompt: str = ""
    model: str
    width: int
    height: int
    steps: int
    guidance: float
    seed: int
    family: str = Field(
        default="unknown", description="The image model family whose defaults apply (imaging/families.py)"
    )
    true_cfg_scale: float | None = Field(
        default=None, description="Qwen-Image's classifier-free guidance (the family's CFG runs through it); else None"
    )
    device: str = "auto"
    dtype: str = Field(default="auto", description="auto|fp32|bf16|fp16; after rendering, the one used")
    vae: str = Field(default="full", description="full, tiny, or a VAE folder/id; after rendering, the one used")
