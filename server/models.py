"""Pydantic results of the tools: what the host LLM reads as structured output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from memrl.memory import RecallResult


class RecalledMemory(BaseModel):
    id: int = Field(description="Memory id; pass it in used_ids when reporting the outcome")
    kind: Literal["success", "failure", "note"] = Field(
        description="success: a reusable script; failure: a reflection on what to avoid"
    )
    intent: str = Field(description="The task this experience came from")
    experience: str
    q: float = Field(
        description="Learned utility in [-1, 1]: how often injecting it led to success"
    )
    similarity: float = Field(description="Cosine similarity of its intent to this task")
    score: float = Field(description="Phase-B score mixing z(similarity) and z(q)")
    q_sd: float = Field(
        description="Uncertainty of q (posterior standard deviation): large when the memory "
        "has little evidence, small when many outcomes agree"
    )
    successes: float = Field(description="Credited outcomes that were successes")
    failures: float = Field(description="Credited outcomes that were failures")


class RecallOutput(BaseModel):
    task_id: str | None = Field(
        description="Pass this to report_outcome when the task ends (null for a dry run)"
    )
    namespace: str
    delta: float = Field(description="The similarity gate in force for this namespace")
    memories: list[RecalledMemory] = Field(description="Injected experiences, most useful first")
    candidates: int = Field(description="How many memories passed the similarity gate")
    message: str

    @classmethod
    def from_result(cls, result: RecallResult) -> RecallOutput:
        """The wire form of a recall (the MCP tool and `memrl recall` print the same)."""
        return cls(
            task_id=result.task_id,
            namespace=result.namespace,
            delta=result.delta,
            memories=[
                RecalledMemory(
                    id=r.id,
                    kind=r.kind,  # type: ignore[arg-type]
                    intent=r.intent,
                    experience=r.experience,
                    q=r.q,
                    similarity=r.similarity,
                    score=r.score,
                    q_sd=round(r.q_sd, 4),
                    successes=r.successes,
                    failures=r.failures,
                )
                for r in result.injected
            ],
            candidates=len(result.candidates),
            message=result.message,
        )


class CreditedMemory(BaseModel):
    id: int
    q: float = Field(description="Q after this outcome")


class OutcomeOutput(BaseModel):
    task_id: str
    status: Literal["updated", "already_reported"]
    reward: float
    credited: list[CreditedMemory]
    reflection_id: int | None = Field(
        default=None,
        description="Id of the memory stored from `reflection`, if one was given",
    )
    forgotten: list[int] = Field(
        default_factory=list,
        description="Credited memories deleted since the recall: nothing was credited to them",
    )
    archived: list[int] = Field(
        default_factory=list,
        description="Memories the feedback marked outdated: moved to the archive",
    )
    message: str


class StoreOutput(BaseModel):
    id: int
    created: bool = Field(description="False when the same intent + experience was already stored")
    namespace: str
    redacted: int = Field(default=0, description="Secrets replaced by [REDACTED] before storing")
    superseded: list[int] = Field(
        default_factory=list,
        description="Memories this one corrects: archived, recall returns this one instead",
    )
    message: str


class NamespaceStats(BaseModel):
    namespace: str
    model_id: str
    delta: float = Field(description="The similarity gate a recall in this namespace applies")
    delta_source: str = Field(description="Where delta comes from")
    delta_calibrated: float | None = Field(description="The namespace's calibrated gate, if any")
    delta_kind: str = Field(
        default="calibrated", description="explicit, learned, calibrated or default"
    )
    delta_learned: float | None = Field(
        default=None, description="The gate learned from outcomes (applied with --learn-gate)"
    )
    gate_learning: bool = Field(default=False, description="Whether the learned gate applies")
    gate_evidence: dict[str, object] = Field(
        default_factory=dict,
        description="Gate learning's evidence over the last reported tasks (see memrl stats)",
    )
    false_positive_rate: float | None = Field(
        default=None,
        description="Share of injected memories whose task failed without using them",
    )
    memories: int
    intents: int = Field(description="Distinct intents the memories are filed under")
    mean_q: float | None
    tested_memories: int = Field(
        description="Memories with at least one credited outcome (the others: q_sd 0.577)"
    )
    failure_memories: int
    tasks: int
    tasks_reported: int
    success_rate: float | None
    archived: int = Field(default=0, description="Memories out of retrieval, restorable")


class MemoryDetail(BaseModel):
    id: int
    namespace: str
    intent_id: int
    intent: str
    experience: str
    kind: str
    q: float
    n_updates: int
    last_reward: float | None
    created_at: float
    updated_at: float
    metadata: dict[str, object]
    model_id: str
    source_task_id: str | None
    successes: float = Field(description="Credited outcomes that were successes")
    failures: float = Field(description="Credited outcomes that were failures")
    q_sd: float = Field(description="Uncertainty of q (posterior standard deviation)")
    q_recent: float = Field(description="Fast-moving average of the last outcomes")
