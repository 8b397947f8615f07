"""A scripted LLM for tests: answers by the first matching substring of the prompt."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from qia_cli.llm.base import FAKE, Completion
from qia_cli.llm.types import ModelInfo


class FakeLLM:
    capabilities = FAKE

    def __init__(
        self,
        answers: dict[str, str] | None = None,
        json_answers: dict[str, Any] | None = None,
        default: str = "",
        on_call: Callable[[str], None] | None = None,
    ) -> None:
        self.answers = answers or {}
        self.json_answers = json_answers or {}
        self.default = default
        self.prompts: deque[str] = deque(maxlen=1000)  # the latest prompts, for tests (bounded: batches)
        self.on_call = on_call
        self.closed = False
        self.info = ModelInfo(name="fake", backend="fake")

    def _pick(self, text: str, table: dict[str, Any], default: Any) -> Any:
        for key, value in table.items():
            if key.lower() in text.lower():
                return value
        return default

    def complete(self, prompt: str, *, max_tokens: int = 24, stop: list[str] | None = None) -> Completion:
        self.prompts.append(prompt)
        if self.on_call:
            self.on_call(prompt)
        text = self._pick(prompt.rsplit("Q:", 1)[-1], self.answers, self.default)
        return Completion(text=text, finish_reason="stop", tokens=len(text.split()))

    def json(self, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int = 256) -> Completion:
        prompt = "\n".join(m["content"] for m in messages)
        self.prompts.append(prompt)
        if self.on_call:
            self.on_call(prompt)
        value = self._pick(messages[-1]["content"], self.json_answers, None)
        text = value if isinstance(value, str) else json.dumps(value if value is not None else {})
        return Completion(text=text, finish_reason="stop", tokens=len(text.split()))

    def close(self) -> None:
        self.closed = True
