"""The typed stages of a request. These pydantic models are the JSON contract of
`qia plan --json` and `qia generate --json`; scripts and the benchmark read them.

Request -> Plan (gaps + actions) -> Evidence per gap -> RenderSpec -> Outputs -> Rounds
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from qia_cli.imaging.spec import RenderSpec  # noqa: F401  (part of the plan contract; imaging names it)
from qia_cli.llm.types import ModelInfo, ModelProfile  # noqa: F401  (part of the plan contract)

SCHEMA_VERSION = 1

GapKind = Literal[
    "subject",  # who or what exactly ("the new headquarters")
    "knowledge",  # implicit knowledge to make explicit ("the national flower of Japan")
    "time",  # time-sensitive facts ("latest", "this year")
    "personal",  # personal references ("my dog", "our logo")
    "text",  # text to render ("a sign that says ...")
    "style",  # medium / look
    "composition",  # framing, shot, layout
    "setting",  # place, time of day, lighting
    "purpose",  # what the image is for (poster, card) and its occasion
]
Action = Literal["ask", "search", "recall", "reason", "assume"]
EvidenceSource = Literal["reasoning", "search", "memory", "user", "assumption", "feedback", "session"]


class Gap(BaseModel):
    id: str = Field(description="Stable id within the plan: g1, g2, ...")
    kind: GapKind
    description: str = Field(description="What is missing, in words")
    action: Action = Field(description="How the gap gets filled")
    span: str | None = Field(default=None, description="The words of the request the gap concerns")
    query: str | None = Field(default=None, description="Search query or reasoning question, where used")
    filled: bool = Field(default=False, description="Whether evidence filled the gap")
    origin: Literal["rule", "llm"] = "rule"


class Question(BaseModel):
    id: str = Field(description="q1, q2, ... in order of importance")
    gap_id: str
    text: str
    default: str | None = Field(default=None, description="Suggested answer; Enter accepts it")
    answer: str | None = None
    status: Literal["open", "answered", "skipped", "assumed"] = "open"


class Evidence(BaseModel):
    gap_id: str | None = None
    source: EvidenceSource
    content: str = Field(description="What the mechanism contributed, as it enters the prompt")
    detail: str | None = Field(default=None, description="Where it came from: a URL, a memory id, the question asked")
    role: Literal["name", "look", "fact", "edit"] | None = Field(
        default=None,
        description="For reasoning: the name of the described thing, or what it looks like; "
        "for the user: 'edit' is a refinement of the previous plan",
    )
    confidence: float | None = Field(
        default=None, description="The model's mean token log-probability for this answer, where known"
    )
    used: bool = Field(default=True, description="False: recorded for the trace, kept out of the prompt (a guess)")
    why: str | None = Field(default=None, description="Why it was kept out of the prompt, when it was")


class SessionRef(BaseModel):
    """A recorded session the request points back to ("like the one I made yesterday")."""

    id: str
    time: str
    request: str
    prompt: str = ""
    seed: int | None = None
    model: str | None = None


class Plan(BaseModel):
    schema_version: int = SCHEMA_VERSION
    id: str | None = Field(default=None, description="The plan's id in the call log (qia logs --plan ID)")
    request: str
    gaps: list[Gap] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    prompt: str = ""
    negative_prompt: str = ""
    checklist: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    model: ModelInfo | None = None
    knowledge_model: ModelInfo | None = Field(
        default=None,
        description="The model that answers knowledge questions (the planner's own model, or Gemma with the "
        "knowledge extra); named from the settings when no question loaded it",
    )
    previous_prompt: str | None = Field(default=None, description="The prompt this plan refines, in a session")
    turns: list[str] = Field(
        default_factory=list,
        description="A refined plan's requests, the first one first ('request' joins them with ' | ')",
    )
    session: SessionRef | None = Field(
        default=None, description="The recorded session the request refers to; its seed and model are reused"
    )

    @property
    def assumptions(self) -> list[Evidence]:
        return [e for e in self.evidence if e.source == "assumption"]

    @property
    def recalled(self) -> list[str]:
        """The ids of the memory entries this plan used (each memory evidence names its entry)."""
        return list(dict.fromkeys(e.detail for e in self.evidence if e.source == "memory" and e.detail))

    def gap(self, gap_id: str) -> Gap | None:
        return next((g for g in self.gaps if g.id == gap_id), None)


class ItemScore(BaseModel):
    item: str
    score: float


class Round(BaseModel):
    index: int = Field(description="0 = the first render, 1.. = feedback rounds")
    image: int = Field(default=0, description="Which of the --count images this round belongs to (0-based)")
    prompt: str
    negative_prompt: str
    seed: int
    scores: list[ItemScore] = Field(default_factory=list)
    overall: float | None = None
    change: str | None = Field(default=None, description="What was changed for this round")
    reason: str | None = Field(default=None, description="Why it was changed")
    output: str | None = Field(default=None, description="Where this round's image was saved, if it was")
    kept: bool = Field(default=False, description="The best round by overall score: the image delivered")


class Output(BaseModel):
    path: str
    sidecar: str
    seed: int
    width: int
    height: int


class GenerateResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    plan: Plan
    render: RenderSpec
    outputs: list[Output] = Field(default_factory=list)
    rounds: list[Round] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    device: str | None = None
