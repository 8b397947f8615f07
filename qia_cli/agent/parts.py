"""The parts an `Agent` is built from, as protocols: what it calls on each, and nothing more. The real
parts live in the backends (which never import the agent); tests and other front ends may pass any object
with these methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from qia_cli.agent.types import RenderSpec
    from qia_cli.imaging.pipeline import LoadedPipeline
    from qia_cli.imaging.scoring import Scorer
    from qia_cli.memory.recall import Recall
    from qia_cli.memory.store import SessionRecord


class Memory(Protocol):
    """What the agent and its planner ask of memory (a MemoryStore; a read-only view in Ray workers)."""

    def recall(self, request: str, limit: int = 8) -> Recall: ...

    def find_session(self, request: str) -> SessionRecord | None: ...

    def touch(self, ids: list[str]) -> None: ...

    def add_session(self, record: dict[str, Any]) -> object: ...


class Renderer(Protocol):
    """Loads an image model and renders a RenderSpec on it (qia_cli.imaging.pipeline.DiffusersRenderer).
    It keeps what it loaded warm for the next render, and frees it on `release`."""

    def check_model(self, model: str) -> None:
        """Whether `model` can load, judged on paper (nothing loads); a QiaError when it cannot."""

    def validate_size(self, width: int, height: int) -> None:
        """A UsageError for a size the renderer cannot make."""

    def load(
        self,
        model: str,
        device: str = "auto",
        *,
        dtype: str | None = "auto",
        vae: str | None = "full",
        progress: Callable[[str], None] | None = None,
        verbose: bool = False,
    ) -> LoadedPipeline: ...

    def render(
        self,
        spec: RenderSpec,
        *,
        loaded: LoadedPipeline | None = None,
        count: int = 1,
        on_step: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        verbose: bool = False,
    ) -> list[tuple[Any, int]]:
        """`count` images (PIL) with seeds spec.seed, spec.seed+1, ...: [(image, seed)]."""

    def release(self) -> None: ...


class ScorerLoader(Protocol):
    """Loads the feedback loop's scorer and keeps it warm (qia_cli.imaging.scoring.ClipScorers)."""

    def load(
        self,
        source: str,
        device: str = "cpu",
        dtype: Any = None,
        *,
        progress: Callable[[str], None] | None = None,
        verbose: bool = False,
    ) -> Scorer: ...

    def release_if_tight(self) -> bool:
        """Free the scorer when the device it sits on is short of memory; True if it did."""
