"""Request and response bodies of the REST API (the OpenAPI schema is generated from them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ID = r"^[A-Za-z0-9_.:\-]{1,64}$"


class LabelIn(BaseModel):
    """A verdict on one transaction (fields as in topic ``labels``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    transaction_id: str = Field(pattern=_ID)
    card_id: str = Field(pattern=_ID)
    label: Literal["fraud", "genuine"]
    source: Literal["chargeback", "analyst", "customer"] = "analyst"
    label_time: datetime | None = Field(
        default=None, description="when the verdict became known (UTC); default: now")

    @field_validator("label_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("label_time needs a timezone (UTC)")
        return value

    def to_record(self) -> dict[str, Any]:
        when = (self.label_time or datetime.now(tz=UTC)).astimezone(UTC)
        return {"transaction_id": self.transaction_id, "card_id": self.card_id,
                "label": self.label, "source": self.source,
                "label_time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z")}


class LabelOut(BaseModel):
    accepted: bool
    topic: str
    label: dict[str, Any]


class Reason(BaseModel):
    code: str = Field(description="feature name")
    value: float
    contribution: float = Field(description="TreeSHAP log-odds contribution")


class ScoreOut(BaseModel):
    transaction_id: str
    score: float = Field(description="combined fraud probability the decision is made on")
    scores: dict[str, float | None] = Field(description="batch (XGBoost) and online (River)")
    decision: Literal["approve", "review", "decline"]
    reasons: list[Reason] = Field(description="top contributions; alerts only")
    model_version: dict[str, str | None]
    published: bool = Field(description="also published to topic transactions")


class AliasRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: Literal["champion", "challenger", "shadow"]
    reason: str = Field(min_length=3, max_length=500)
    actor: str = Field(default="api", max_length=100)
