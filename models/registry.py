"""Which stage model is current, and where models live.

- The model shipped with the project: ``models/artifacts/`` (``CURRENT``
  names its metadata file), so ``make demo`` classifies without training.
- Models trained here: ``$ENGAGE_HOME/models/<version>.{skops,json}``;
  ``$ENGAGE_HOME/models/current.json`` points at the promoted one and wins
  over the shipped model.
- Every promotion is also recorded in the warehouse table ``model_version``
  with its test-split score and the baseline's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engage.errors import ModelError
from models.stage_classifier import SHIPPED_DIR, StageModel, load_model

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from engage.settings import Settings

_CACHE: dict[tuple[str, float], StageModel] = {}


def model_dir(settings: Settings) -> Path:
    return settings.home / "models"


def shipped_meta_path() -> Path:
    pointer = SHIPPED_DIR / "CURRENT"
    if not pointer.exists():
        raise ModelError(f"{pointer}: no shipped model (run `engage model train --ship`)")
    return SHIPPED_DIR / pointer.read_text(encoding="utf-8").strip()


def current_meta_path(settings: Settings) -> Path:
    pointer = model_dir(settings) / "current.json"
    if pointer.exists():
        data = json.loads(pointer.read_text(encoding="utf-8"))
        return model_dir(settings) / data["metadata"]
    return shipped_meta_path()


def load_current(settings: Settings) -> StageModel:
    """The current model, loaded once per process (reloaded when it changes)."""
    path = current_meta_path(settings)
    key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_model(path)
    return _CACHE[key]


def resolve(settings: Settings, ref: str | None) -> StageModel:
    """A model by version, by metadata path, or the current one."""
    if not ref:
        return load_current(settings)
    path = Path(ref)
    if path.suffix == ".json" and path.exists():
        return load_model(path)
    for folder in (model_dir(settings), SHIPPED_DIR):
        candidate = folder / f"{ref}.json"
        if candidate.exists():
            return load_model(candidate)
    raise ModelError(f"no model {ref!r} in {model_dir(settings)} or {SHIPPED_DIR}")


def promote(settings: Settings, model: StageModel, engine: Engine | None = None, **scores: Any) -> None:
    """Make ``model`` current here, and record it in the warehouse when given."""
    if model.path is None:
        raise ModelError("only a saved model can be promoted")
    folder = model_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = model.path.with_suffix(".json")
    if meta_path.parent.resolve() != folder.resolve():
        raise ModelError(f"{meta_path}: only models under {folder} can be promoted here")
    tmp = folder / "current.json.tmp"
    tmp.write_text(
        json.dumps({"metadata": meta_path.name, "version": model.version}) + "\n", encoding="utf-8"
    )
    tmp.replace(folder / "current.json")
    if engine is not None:
        record_version(engine, model, is_current=True, **scores)


def record_version(engine: Engine, model: StageModel, *, is_current: bool, **scores: Any) -> None:
    from sqlalchemy import update

    from engage.warehouse.db import upsert
    from engage.warehouse.schema import model_version

    meta = model.metadata
    now = datetime.now(UTC)
    row = {
        "version": model.version,
        "created_at": now,
        "artifact_path": str(model.path),
        "training_data_sha256": meta.get("training_data_sha256", ""),
        "test_macro_f1": scores.get("test_macro_f1", meta.get("test_metrics", {}).get("macro_f1")),
        "test_accuracy": scores.get("test_accuracy", meta.get("test_metrics", {}).get("accuracy")),
        "baseline_macro_f1": scores.get("baseline_macro_f1"),
        "metrics_json": json.dumps(scores.get("metrics", meta.get("test_metrics", {}))),
        "promoted_at": now if is_current else None,
        "is_current": is_current,
    }
    with engine.begin() as conn:
        if is_current:
            conn.execute(update(model_version).values(is_current=False))
        upsert(
            conn,
            model_version,
            [row],
            key=["version"],
            update=[
                "test_macro_f1",
                "test_accuracy",
                "baseline_macro_f1",
                "metrics_json",
                "promoted_at",
                "is_current",
            ],
        )
