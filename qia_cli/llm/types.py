"""What a planner backend says about its model. The backends own these types; the plan contract
(`qia_cli/agent/types.py`) includes them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ModelProfile(BaseModel):
    """What a GGUF's own metadata says about the model (qia_cli/llm/profile.py reads it), and what qia
    does with that: the context window it opens and whether the LLM is asked for gaps by default."""

    architecture: str | None = None
    size_label: str | None = Field(default=None, description="general.size_label, else from the parameter count")
    parameters: int | None = Field(default=None, description="Elements summed over the tensors")
    quantization: str | None = None
    context_length: int | None = Field(default=None, description="The context the model was trained for")
    chat_template: bool = Field(default=False, description="tokenizer.chat_template is present")
    kind: Literal["instruct", "base"] = Field(
        default="base", description="instruct: chat calls through its template; base: raw completion only"
    )
    tier: Literal["tiny", "small", "medium", "large"] | None = Field(
        default=None, description="tiny < 0.4B, small < 1.2B, medium < 5B, large from 5B parameters"
    )
    license: str | None = None
    auto_ctx: int | None = Field(default=None, description="The context window qia opens unless llm_ctx is set")
    llm_gaps: bool = Field(default=False, description="Whether llm_gaps=auto asks this model for gaps")


class ModelInfo(BaseModel):
    name: str
    backend: str
    path: str | None = None
    profile: ModelProfile | None = None
