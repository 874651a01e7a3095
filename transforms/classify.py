"""Classify content items by buying-journey stage, incrementally.

An item needs (re)classification when it has no prediction yet, or when its
``content_hash`` changed since it was classified (it was edited). Items
classified by an older model are left for ``reclassify_stale`` (run by the
``stage_reclassify`` DAG in the background when a new model is promoted), so
a model change never blocks the daily run.

Settings: ``ENGAGE_MIN_CONFIDENCE`` (default 0.4): below it the stored
label is ``uncertain`` (the model's own label is kept in ``model_label``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Select, and_, or_, select

from engage.warehouse.db import upsert
from engage.warehouse.schema import content_item, stage_prediction

if TYPE_CHECKING:
    from engage.config import SourcesConfig
    from engage.settings import Settings
    from models.stage_classifier import StageModel

BATCH = 5_000


def min_confidence() -> float:
    return float(os.environ.get("ENGAGE_MIN_CONFIDENCE", "0.4"))


def item_text(title: str | None, body: str | None) -> str:
    return "\n".join(part for part in (title, body) if part)


@dataclass
class ClassifyCounts:
    classified: int = 0
    model_version: str = ""


def _needs_classification() -> Select[Any]:
    return (
        select(
            content_item.c.item_id,
            content_item.c.title,
            content_item.c.body_text,
            content_item.c.content_hash,
        )
        .select_from(
            content_item.outerjoin(stage_prediction, stage_prediction.c.item_id == content_item.c.item_id)
        )
        .where(
            or_(
                stage_prediction.c.item_id.is_(None),
                stage_prediction.c.content_hash != content_item.c.content_hash,
            )
        )
        .order_by(content_item.c.item_id)
    )


def _stale_version(version: str) -> Select[Any]:
    return (
        select(
            content_item.c.item_id,
            content_item.c.title,
            content_item.c.body_text,
            content_item.c.content_hash,
        )
        .join(stage_prediction, stage_prediction.c.item_id == content_item.c.item_id)
        .where(and_(stage_prediction.c.model_version != version))
        .order_by(content_item.c.item_id)
    )


def _classify(
    engine: Engine, model: StageModel, query: Select[Any], threshold: float, limit: int | None
) -> int:
    done = 0
    last_id = 0
    while limit is None or done < limit:
        size = BATCH if limit is None else min(BATCH, limit - done)
        with engine.connect() as conn:
            rows = conn.execute(query.where(content_item.c.item_id > last_id).limit(size)).all()
        if not rows:
            break
        predictions = model.predict([item_text(r.title, r.body_text) for r in rows], threshold)
        stamp = datetime.now(UTC)
        with engine.begin() as conn:
            upsert(
                conn,
                stage_prediction,
                [
                    {
                        "item_id": r.item_id,
                        "label": p.label,
                        "model_label": p.model_label,
                        "confidence": p.confidence,
                        "model_version": p.model_version,
                        "content_hash": r.content_hash,
                        "predicted_at": stamp,
                    }
                    for r, p in zip(rows, predictions, strict=True)
                ],
                key=["item_id"],
            )
        done += len(rows)
        last_id = rows[-1].item_id
    return done


def classify_new(
    engine: Engine, model: StageModel, *, threshold: float | None = None, limit: int | None = None
) -> int:
    """Classify items that are new or changed since they were classified."""
    return _classify(
        engine, model, _needs_classification(), min_confidence() if threshold is None else threshold, limit
    )


def reclassify_stale(
    engine: Engine, model: StageModel, *, threshold: float | None = None, limit: int | None = None
) -> int:
    """Reclassify items whose prediction came from another model version."""
    return _classify(
        engine,
        model,
        _stale_version(model.version),
        min_confidence() if threshold is None else threshold,
        limit,
    )


def classify_day(
    settings: Settings, config: SourcesConfig, run_date: date, *, engine: Engine
) -> ClassifyCounts:
    """The daily step: classify what the day's load added or changed."""
    from models.registry import load_current

    model = load_current(settings)
    return ClassifyCounts(classify_new(engine, model), model.version)
