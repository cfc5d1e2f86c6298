"""Request and response bodies of the HTTP API (pydantic; unknown keys in a request are rejected)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fusionrec.serve.catalog import ID_PATTERN

ExternalId = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=128)]
EventType = Literal["view", "click", "like", "dislike", "purchase", "rating", "impression"]
MAX_EVENTS = 1000
MAX_K = 200


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Card(BaseModel):
    item_id: str
    title: str
    poster_url: str | None
    genres: list[str]


class Evidence(BaseModel):
    modality: str
    item_id: str | None
    title: str
    phrase: str
    similarity: float


class Explanation(BaseModel):
    driver: str | None
    headline: str | None
    contributions: dict[str, float] | None
    weights: dict[str, float] | None
    evidence: list[Evidence]


class ScoredCard(Card):
    rank: int
    score: float
    explanation: Explanation | None = None


class RecommendationsOut(BaseModel):
    user_id: str | None
    cold: bool
    variant: str | None = None
    items: list[ScoredCard]


class ColdQuery(Strict):
    """A user the server does not know, described by picked items, a text and/or profile values."""

    items: list[ExternalId] = Field(default_factory=list, max_length=500)
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None
    profile: dict[Annotated[str, StringConstraints(max_length=64)], str | int | float] = Field(default_factory=dict, max_length=32)
    k: int = Field(10, ge=1, le=MAX_K)
    diversity: float = Field(0.0, ge=0.0, le=1.0)
    variant: Annotated[str, StringConstraints(max_length=64)] | None = None


class EventIn(Strict):
    user_id: ExternalId
    item_id: ExternalId | None = None
    type: EventType
    value: float | None = Field(None, allow_inf_nan=False, ge=-1e6, le=1e6)
    timestamp: float | None = Field(None, allow_inf_nan=False, ge=0, le=1e11)
    variant: Annotated[str, StringConstraints(max_length=64)] | None = None


class EventsIn(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class EventsOut(BaseModel):
    stored: int
    duplicate: bool


class ItemOut(BaseModel):
    item_id: str
    index: int
    encoded: list[str]


class SimilarOut(BaseModel):
    item_id: str
    modality: str
    items: list[ScoredCard]


class SearchOut(BaseModel):
    query: str
    items: list[ScoredCard]


class HistoryOut(BaseModel):
    user_id: str
    items: list[Card]


class UserRow(BaseModel):
    user_id: str
    n_history: int


class UsersOut(BaseModel):
    users: list[UserRow]


class Health(BaseModel):
    status: str
    model: str
    n_users: int
    n_items: int
    events: int
    index: dict[str, Any]
