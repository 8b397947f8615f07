"""Converters from external benchmark files to qia suites.

WISE-style records (`id`, `prompt`, `explanation`, optional `domain`) plus an answer-key file
(`id`, `keys`: answer phrases, `confidence`: high | medium | low, `answer_in_prompt`) become a
reason suite: the request is the prompt, `expect_any` the keys. Items whose answer is already in the
prompt test nothing and are dropped, and so are keys below the confidence asked for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qia_cli.errors import UsageError

CONFIDENCE = {"low": 0, "medium": 1, "high": 2}


@dataclass
class Converted:
    items: list[dict]
    read: int
    no_key: int = 0
    low_confidence: int = 0
    answer_in_prompt: int = 0


def read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(record, dict) or "id" not in record:
            raise UsageError(f"{path}:{number}: expected a JSON object with an 'id'")
        yield number, record


def convert_wise(records: Path, keys: Path, min_confidence: str = "high") -> Converted:
    if min_confidence not in CONFIDENCE:
        raise UsageError(f"unknown confidence '{min_confidence}'", hint="use high, medium or low")
    floor = CONFIDENCE[min_confidence]
    answers = {str(r["id"]): r for _n, r in read_jsonl(keys)}
    out = Converted(items=[], read=0)
    for number, record in read_jsonl(records):
        out.read += 1
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise UsageError(f"{records}:{number}: the record has no 'prompt'")
        key = answers.get(str(record["id"])) or {}
        phrases = [k for k in key.get("keys") or [] if isinstance(k, str) and k.strip()]
        if not phrases:
            out.no_key += 1
            continue
        if CONFIDENCE.get(str(key.get("confidence", "low")).lower(), 0) < floor:
            out.low_confidence += 1
            continue
        if key.get("answer_in_prompt"):
            out.answer_in_prompt += 1
            continue
        item = {"id": f"wise-{record['id']}", "capability": "reason", "request": prompt.strip(), "expect_any": phrases}
        if record.get("domain"):
            item["domain"] = record["domain"]
        out.items.append(item)
    return out


def write_jsonl(items: list[dict], path: Path | None) -> str:
    text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    if path is not None:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return text
