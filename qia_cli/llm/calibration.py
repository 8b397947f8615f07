"""How far the planner trusts a model's own answers: thresholds measured per model, not constants.

A 270M model is rarely sure and often wrong; a 1.5B model is sure more often and right more often; a
threshold tuned for one is a bug for the next. `qia bench calibrate` asks a model every question of the
dev splits (knowledge items and ordinary requests), replays the planner's rule (reasoning.decide) over a
grid of thresholds, and keeps the ones that name the most right answers while no ordinary suite is harmed
in more than 1% of its requests. The result is saved for that model file; measured calibrations for the
bundled models and the catalog's planners ship here, found by the model's architecture and size.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from qia_cli.llm.types import ModelInfo


@dataclass(frozen=True)
class Calibration:
    """The defaults are for a model nobody measured: no answer is taken on the model's word alone, and
    requests the grammar does not flag are left alone."""

    # A first answer the model is at least this sure of (mean token log-probability) is taken alone;
    # None: always ask again.
    sure: float | None = None
    # The same answer from two askings, the surest of them at least this sure; from three, `agree3`.
    agree: float = -0.6
    agree3: float = -1.2
    # Ask about requests the grammar does not flag ("a tall pink bird resting on one leg"): the model judges
    # them; both askings must name the same thing, the surer at least this sure. None: not asked. Only for
    # models whose answers to ordinary dev requests harm none of them at this threshold.
    whole: float | None = None
    # Where the numbers come from.
    source: str = "default (not measured for this model)"

    def to_dict(self) -> dict:
        return asdict(self)


# Measured with `qia bench calibrate` on the dev splits of the built-in suites (reason and knowledge questions
# against ordinary and everyday harm, 364 items), keyed by GGUF architecture and size: a model of the same
# family and size finds its row. Dev numbers: right and wrong names of 184 knowledge items, harm of 180.
_GEMMA_270M = Calibration(  # Gemma-3-270m Q4_K_M, the knowledge extra: 63 right, 33 wrong, harm 0/180
    sure=-1.5, agree=-0.75, agree3=-1.5, whole=None, source="measured on dev: Gemma-3-270m Q4_K_M"
)
_SMOLLM2_135M = Calibration(  # SmolLM2-135M-Instruct Q4_1, the bundled planner: 40 right, 12 wrong, harm 0/180
    sure=-1.0, agree=-0.2, agree3=-0.5, whole=None, source="measured on dev: SmolLM2-135M-Instruct Q4_1"
)
_QWEN2_1_5B = Calibration(  # Qwen2.5-Coder-1.5B-Instruct Q4_K_M: 104 right, 21 wrong, harm 0/180
    sure=-0.75, agree=-0.35, agree3=-1.0, whole=-0.2, source="measured on dev: Qwen2.5-Coder-1.5B-Instruct Q4_K_M"
)
MEASURED: dict[tuple[str, str], Calibration] = {
    ("gemma3", "270M"): _GEMMA_270M,
    ("llama", "135M"): _SMOLLM2_135M,
    ("qwen2", "1.5B"): _QWEN2_1_5B,
}


# The bundled models by the names qia gives them (named before they are built or unpacked).
MEASURED_BY_NAME: dict[str, Calibration] = {
    "Gemma-3-270m Q4_K_M (knowledge extra)": _GEMMA_270M,
    "SmolLM2-135M-Instruct Q4_1 (bundled)": _SMOLLM2_135M,
}


def _profile(path: str):
    from qia_cli.llm.gguf_meta import GGUFError
    from qia_cli.llm.profile import read_profile

    try:
        return read_profile(path)
    except (GGUFError, OSError):
        return None


def key_of(info: ModelInfo) -> str:
    """The key a saved calibration is found by: the model file's name and size (cheap, unlike a hash of a
    GB file), or the backend and model name for a server."""
    if info.path:
        path = Path(info.path)
        try:
            return f"{path.name}:{path.stat().st_size}"
        except OSError:
            return path.name
    return f"{info.backend}:{info.name}"


def _saved(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load(info: ModelInfo, saved_file: Path | None = None) -> Calibration:
    """The model's own calibration (saved by `qia bench calibrate`), else the measured row for its family and
    size, else the cautious default."""
    if saved_file is not None:
        entry = _saved(saved_file).get(key_of(info))
        if isinstance(entry, dict) and _valid(entry):
            return Calibration(**{k: v for k, v in entry.items() if k in Calibration.__dataclass_fields__})
    row = MEASURED_BY_NAME.get(info.name)
    if row is not None:
        return row
    profile = info.profile
    if profile is None and info.path:  # named but not built: the GGUF header says what it is (no weights read)
        profile = _profile(info.path)
    if profile is not None and profile.architecture and profile.size_label:
        row = MEASURED.get((profile.architecture, profile.size_label))
        if row is not None:
            return row
    return Calibration()


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid(entry: dict) -> bool:
    """A saved entry someone may have edited by hand: right types, or it is ignored."""
    return (
        (entry.get("sure") is None or _number(entry.get("sure")))
        and _number(entry.get("agree", 0.0))
        and _number(entry.get("agree3", 0.0))
        and (entry.get("whole") is None or _number(entry.get("whole")))
        and isinstance(entry.get("source", ""), str)
    )


def save(info: ModelInfo, calibration: Calibration, saved_file: Path) -> None:
    from qia_cli.fsutil import atomic_write_bytes

    data = _saved(saved_file)
    data[key_of(info)] = calibration.to_dict()
    atomic_write_bytes(saved_file, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
