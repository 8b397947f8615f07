"""The baselines the agent is measured against, on the same LLM.

- `raw`: the request goes to the image model unchanged.
- `enhance`: what a typical prompt enhancer does (mold's --expand, "magic prompt" buttons): one
  single-shot chat call, a system prompt that says "rewrite this into a detailed text-to-image prompt",
  the request as the user message, and the reply used as the prompt. We go through the LLM protocol's
  `json` call (a chat completion) with the schema {"prompt": string, maxLength 400}, so the reply
  parses every time; the grammar shapes the output, not its content. A reply that cannot be
  parsed falls back to the request, as enhancers do.
- `single`: one few-shot completion-style call on the whole request, what a careful user of a small
  model would try first: a header, four example Q/A pairs unrelated to the request ("Q: What is shown
  in: the tool used to drive nails?" "A: a hammer"), then "Q: What is shown in: REQUEST?" "A:". Greedy,
  one line, at most 16 tokens. The prompt is the request, ", " and the answer, so the request itself
  is never harmed; the answer is the only thing it adds, and on `ordinary` items it counts as
  reasoning content. Nothing here is shared with the agent's reasoning code.
"""

from __future__ import annotations

import re

from qia_cli.bench.scorers import content_words
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


SINGLE_HEADER = "Answer each question with a short name.\n\n"
SINGLE_POOL = [
    ("the tool used to drive nails", "a hammer"),
    ("the frozen dessert served in a crisp cone", "ice cream"),
    ("the board game played with kings, queens and pawns", "chess"),
    ("the yellow vehicle that takes American children to school", "a school bus"),
    ("the machine that washes the plates after dinner", "a dishwasher"),
    ("the fictional detective who lived at 221B Baker Street", "Sherlock Holmes"),
]
SINGLE_MAX_TOKENS = 16
SINGLE_EXAMPLES = 4


def single_prompt(request: str) -> str:
    """The few-shot prompt: the four pool pairs that share the fewest words with the request."""
    mine = content_words(request)
    pairs = sorted(SINGLE_POOL, key=lambda qa: len(mine & content_words(qa[0] + " " + qa[1])))[:SINGLE_EXAMPLES]
    shots = "".join(f"Q: What is shown in: {q}?\nA: {a}\n\n" for q, a in pairs)
    return f"{SINGLE_HEADER}{shots}Q: What is shown in: {request.strip().rstrip('?.!')}?\nA:"


def _answer(text: str) -> str:
    text = re.split(r"\n|\bQ:", text or "")[0]
    text = re.sub(r"^\s*(?:A:|answer:)\s*", "", text, flags=re.I)
    return text.strip().strip("\"'`").strip().rstrip(" .;,:!")


def single(llm: LLM, request: str) -> tuple[str, str, int]:
    """(prompt, answer, tokens generated); an empty answer leaves the request as the prompt."""
    completion = llm.complete(single_prompt(request), max_tokens=SINGLE_MAX_TOKENS, stop=["\n"])
    answer = " ".join(_answer(completion.text).split())
    prompt = f"{request.strip()}, {answer}" if answer else request
    return prompt, answer, completion.tokens
