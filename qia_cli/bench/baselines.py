"""The baselines the agent is measured against, on the same LLM.

- `raw`: the request goes to the image model unchanged.
- `enhance`: what a typical prompt enhancer does (mold's --expand, "magic prompt" buttons): one
  single-shot chat call, a system prompt that says "rewrite this into a detailed text-to-image prompt",
  the request as the user message, and the reply used as the prompt. We go through the LLM protocol's
  `json` call (a chat completion) with the schema {"prompt": string, maxLength 400}, so the reply
  parses every time; the grammar shapes the output, not its content. A reply that cannot be
  parsed falls back to the request, as enhancers do.
"""

from __future__ import annotations

from qia_cli.llm.base import LLM, parse_json

ENHANCE_SYSTEM = (
    "You are a prompt engineer for text-to-image models. Rewrite the user's request into one detailed "
    "prompt for an image generator: say exactly what the subject is, and add its visual details, the "
    "setting, the style, the lighting and the composition. Reply with JSON only."
)
ENHANCE_SCHEMA = {
    "type": "object",
    "properties": {"prompt": {"type": "string", "maxLength": 400}},
    "required": ["prompt"],
}
ENHANCE_MAX_TOKENS = 160


def raw(request: str) -> str:
    return request


def enhance(llm: LLM, request: str) -> tuple[str, int]:
    """The enhanced prompt and the number of tokens the LLM generated for it."""
    messages = [
        {"role": "system", "content": ENHANCE_SYSTEM},
        {"role": "user", "content": request},
    ]
    completion = llm.json(messages, ENHANCE_SCHEMA, max_tokens=ENHANCE_MAX_TOKENS)
    data = parse_json(completion)
    prompt = data.get("prompt") if isinstance(data, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        return request, completion.tokens
    return " ".join(prompt.split()), completion.tokens
