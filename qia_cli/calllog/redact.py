"""Secrets never enter the call log: the API keys qia knows of, credentials in URLs, Authorization headers
and strings shaped like common API keys are replaced by `***` before a call is recorded."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

MASK = "***"
# Environment variables that hold keys qia or its servers may be given.
KEY_VARS = ("QIA_LLM_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")

_PATTERNS = [
    # user:password@ in a URL (openai:https://user:key@host/v1)
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I), rf"\1{MASK}@"),
    # Authorization headers and bearer tokens
    (re.compile(r"(\bauthorization\s*[:=]\s*)(?:(bearer|basic|token)\s+)?[^\s,;\"']+", re.I), rf"\1\2 {MASK}"),
    (re.compile(r"\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}", re.I), rf"\1 {MASK}"),
    # api_key=..., access_token: ..., password=... anywhere; key=... and token=... in a query string
    (
        re.compile(
            r"\b((?:api[_-]?key|access[_-]?token|auth[_-]?token|secret[_-]?key|password)\s*[=:]\s*)[^&#\s\"',;]+", re.I
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"([?&](?:key|token|sig|signature)=)[^&#\s\"']+", re.I), rf"\1{MASK}"),
    # shapes of well-known keys: OpenAI (sk-...), Hugging Face (hf_...), GitHub (ghp_...)
    (re.compile(r"\b(sk-|hf_|ghp_|gho_|xox[bp]-)[A-Za-z0-9_-]{16,}"), rf"\1{MASK}"),
]


class Redactor:
    """Masks the given secrets (and those in the environment) and anything shaped like a credential."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        known = {s.strip() for s in secrets if s and len(s.strip()) >= 4}
        known |= {os.environ[v].strip() for v in KEY_VARS if len(os.environ.get(v, "").strip()) >= 4}
        self.known = sorted(known, key=len, reverse=True)  # the longest first: a key that contains another

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        for secret in self.known:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text
