"""Benchmark suites: JSONL files of items, one per line. Built-in suites ship in `suites/`.

Every item has `id`, `capability` (plan | reason | search | memory) and `request`; what is checked
depends on the capability (see the README's Benchmark section):

- reason: `expect_any`, alternative answer phrases;
- search: `fixture` (recorded results, inline or a path relative to the suite file), `expect`, `forbid`;
- memory: `setup` (entries for a fresh store), `expect`, `forbid`;
- plan: `label`, `underspecified` or `specified`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qia_cli.errors import UsageError

SUITES_DIR = Path(__file__).resolve().parent / "suites"
BUILTIN = ("plan", "reason", "search", "memory")
Capability = Literal["plan", "reason", "search", "memory"]


class MemorySetup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    kind: Literal["preference", "fact", "entity"] | None = None
    names: list[str] | None = None


class Item(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    capability: Capability
    request: str = Field(min_length=1)
    expect_any: list[str] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    forbid: list[str] = Field(default_factory=list)
    fixture: list[dict[str, Any]] | str | None = None
    setup: list[MemorySetup] = Field(default_factory=list)
    label: Literal["underspecified", "specified"] | None = None
    domain: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _str_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("id"), int):
            data = {**data, "id": str(data["id"])}
        return data

    @model_validator(mode="after")
    def _checks(self) -> "Item":
        needs = {
            "reason": ("expect_any", bool(self.expect_any)),
            "search": ("fixture and expect", self.fixture is not None and bool(self.expect or self.forbid)),
            "memory": ("setup and expect", bool(self.setup) and bool(self.expect or self.forbid)),
            "plan": ("label", self.label is not None),
        }[self.capability]
        if not needs[1]:
            raise ValueError(f"a {self.capability} item needs {needs[0]}")
        return self


@dataclass
class Suite:
    name: str
    path: Path
    items: list[Item]

    def fixture_path(self, item: Item) -> Path | None:
        """The fixture file of a search item whose fixture is a path (relative to the suite file)."""
        if isinstance(item.fixture, str):
            return (self.path.parent / item.fixture).expanduser()
        return None


def load_suite(path: Path, name: str | None = None) -> Suite:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"suite file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"suite file {path} cannot be read: {exc}") from None
    items: list[Item] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            item = Item.model_validate(json.loads(line))
        except ValueError as exc:  # JSONDecodeError and ValidationError
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise UsageError(f"{path}:{number}: not a valid suite item: {reason}") from None
        if item.id in seen:
            raise UsageError(f"{path}:{number}: duplicate item id '{item.id}'")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise UsageError(f"suite file {path} has no items")
    return Suite(name=name or Path(path).stem, path=Path(path), items=items)


def resolve(names: list[str]) -> list[Suite]:
    """Built-in names (plan, reason, search, memory, all) or paths to JSONL files."""
    suites: list[Suite] = []
    for name in names:
        if name == "all":
            suites += [load_suite(SUITES_DIR / f"{b}.jsonl", b) for b in BUILTIN]
        elif name in BUILTIN:
            suites.append(load_suite(SUITES_DIR / f"{name}.jsonl", name))
        elif Path(name).expanduser().is_file():
            suites.append(load_suite(Path(name).expanduser()))
        else:
            raise UsageError(
                f"unknown suite '{name}'",
                hint="use " + ", ".join(BUILTIN) + ", all, or the path of a JSONL suite file",
            )
    if not suites:
        raise UsageError("no suite given", hint="qia bench all, or qia bench reason my-suite.jsonl")
    return suites


def subset(items: list[Item], limit: int | None, seed: int | None) -> list[Item]:
    """The first `limit` items, or with a seed a random sample of them (kept in suite order)."""
    if seed is not None:
        chosen = random.Random(seed).sample(range(len(items)), min(limit or len(items), len(items)))
        return [items[i] for i in sorted(chosen)]
    return items[:limit] if limit is not None else list(items)
