"""Benchmark suites: JSONL files of items, one per line. Built-in suites ship in `suites/`.

Every item has `id`, `capability` (plan | reason | search | memory | ordinary) and `request`; what is
checked depends on the capability (see the README's Benchmark section):

- reason: `expect_any`, alternative answer phrases;
- search: `fixture` (recorded results, inline or a path relative to the suite file), `expect`, `forbid`;
- memory: `setup` (entries for a fresh store), `expect`, `forbid`;
- plan: `label`, `underspecified` or `specified`;
- ordinary: nothing more: a fully specified request that planning must not harm.

Each built-in suite ships as two halves, `NAME.dev.jsonl` (tune on it) and `NAME.test.jsonl` (report
it), split by `split_items`, stratified by domain. `python -m qia_cli.bench.suite FILE.jsonl` splits a
suite file the same way, next to it. The reason suite's first 32 items, which the planner was tuned on
before the split, are all in dev (`--dev-only`).
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
BUILTIN = ("plan", "reason", "search", "memory", "ordinary", "knowledge", "everyday", "memory_harm")
SPLITS = ("dev", "test", "all")
Capability = Literal["plan", "reason", "search", "memory", "ordinary"]


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
    def _checks(self) -> Item:
        needs = {
            "reason": ("expect_any", bool(self.expect_any)),
            "search": ("fixture and expect", self.fixture is not None and bool(self.expect or self.forbid)),
            "memory": ("setup and expect", bool(self.setup) and bool(self.expect or self.forbid)),
            "plan": ("label", self.label is not None),
            "ordinary": ("", True),
        }[self.capability]
        if not needs[1]:
            raise ValueError(f"a {self.capability} item needs {needs[0]}")
        return self


@dataclass
class Suite:
    name: str
    path: Path
    items: list[Item]
    split: str | None = None  # dev, test or all for a built-in suite; None for a file

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


def load_builtin(name: str, split: str = "test") -> Suite:
    """A built-in suite's dev or test half, or both (`all`: dev items first, then test)."""
    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'", hint="use dev, test or all")
    halves = ("dev", "test") if split == "all" else (split,)
    loaded = [load_suite(SUITES_DIR / f"{name}.{half}.jsonl", name) for half in halves]
    items = [item for part in loaded for item in part.items]
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise UsageError(f"the dev and test halves of the {name} suite share item ids")
    return Suite(name=name, path=loaded[-1].path, items=items, split=split)


def resolve(names: list[str], split: str = "test") -> list[Suite]:
    """Built-in names (plan, reason, search, memory, ordinary, all), in their `split` half, or paths to
    JSONL files (read whole: `split` applies to built-in suites only)."""
    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'", hint="use dev, test or all")
    suites: list[Suite] = []
    for name in names:
        if name == "all":
            suites += [load_builtin(b, split) for b in BUILTIN]
        elif name in BUILTIN:
            suites.append(load_builtin(name, split))
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


def split_items(items: list[Item], dev_only: frozenset[str] | set[str] = frozenset()) -> tuple[list[Item], list[Item]]:
    """(dev, test): about half each, stratified by domain, deterministic, in suite order.

    Items in `dev_only` (say, items a planner was already tuned on) go to dev. Within each domain (in
    order of first appearance) the other items alternate between the halves; a domain starts in the
    half that has fewer of them so far (test on a tie), so every domain is split within one item and
    the halves differ by at most one of them. Items added to a split suite later go into the files by
    hand, so that no item ever moves from one half to the other."""
    groups: dict[str | None, list[Item]] = {}
    for item in items:
        if item.id not in dev_only:
            groups.setdefault(item.domain, []).append(item)
    dev: set[str] = set()
    test: set[str] = set()
    for group in groups.values():
        first, second = (dev, test) if len(dev) < len(test) else (test, dev)
        for index, item in enumerate(group):
            (first if index % 2 == 0 else second).add(item.id)
    return [i for i in items if i.id not in test], [i for i in items if i.id in test]


def write_split(path: Path, dev_only: frozenset[str] | set[str] = frozenset()) -> tuple[Path, Path]:
    """Split the suite file `path` into `STEM.dev.jsonl` and `STEM.test.jsonl` next to it."""
    suite = load_suite(path)
    lines = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("//"):
            lines[str(Item.model_validate(json.loads(line)).id)] = line
    written = []
    for half, part in zip(("dev", "test"), split_items(suite.items, dev_only)):
        target = Path(path).with_name(f"{Path(path).stem}.{half}.jsonl")
        target.write_text("".join(lines[item.id] + "\n" for item in part), encoding="utf-8")
        written.append(target)
    return written[0], written[1]


def subset(items: list[Item], limit: int | None, seed: int | None) -> list[Item]:
    """The first `limit` items, or with a seed a random sample of them (kept in suite order)."""
    if seed is not None:
        chosen = random.Random(seed).sample(range(len(items)), min(limit or len(items), len(items)))
        return [items[i] for i in sorted(chosen)]
    return items[:limit] if limit is not None else list(items)


if __name__ == "__main__":  # python -m qia_cli.bench.suite FILE.jsonl [--dev-only ID...]
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m qia_cli.bench.suite", description="Split a suite file into STEM.dev.jsonl and STEM.test.jsonl."
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--dev-only", nargs="*", default=[], help="ids that go to dev (items already tuned on)")
    args = parser.parse_args()
    for written in write_split(args.file, frozenset(args.dev_only)):
        print(written)
