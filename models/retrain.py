"""Retraining: the corpus plus analysts' labels, promoted only if it wins.

The new model and the current one are both scored on the fixed test split
(the same examples, recomputed now), and the new one becomes current only
when its macro-F1 is strictly higher. Both scores are recorded in the
warehouse table ``model_version``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engage.errors import EngageError, ModelError
from models.stage_classifier import Example, TrainResult, evaluate_model, load_corpus, train_and_save

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from engage.settings import Settings


@dataclass
class RetrainOutcome:
    result: TrainResult
    promoted: bool
    new_macro_f1: float
    current_macro_f1: float | None
    current_version: str | None
    message: str


def train_version(
    corpus_dir: Path, out_dir: Path, *, search: bool = True, feedback: list[Example] | None = None
) -> TrainResult:
    train, test = load_corpus(corpus_dir)
    test_texts = {e.text for e in test}
    extra = [e for e in (feedback or []) if e.text not in test_texts]
    return train_and_save(
        train + extra,
        test,
        out_dir,
        search=search,
        sources={"corpus": str(corpus_dir), "n_feedback": len(extra)},
    )


def retrain(
    settings: Settings,
    *,
    corpus_dir: Path,
    out_dir: Path | None = None,
    search: bool = True,
    use_feedback: bool = True,
    promote_if_better: bool = True,
    engine: Engine | None = None,
) -> RetrainOutcome:
    from models.registry import load_current, model_dir, promote, record_version

    if engine is None:
        try:
            from engage.pipeline import open_warehouse

            engine = open_warehouse(settings)
        except EngageError:
            engine = None
    feedback: list[Example] = []
    if use_feedback and engine is not None:
        from models.feedback import feedback_examples

        feedback = feedback_examples(engine)
    result = train_version(corpus_dir, out_dir or model_dir(settings), search=search, feedback=feedback)
    new_f1 = float(result.test_metrics["macro_f1"])
    _, test = load_corpus(corpus_dir)
    try:
        current = load_current(settings)
        current_f1: float | None = float(evaluate_model(current, test)["macro_f1"])
        current_version: str | None = current.version
    except ModelError:
        current, current_f1, current_version = None, None, None
    wins = current_f1 is None or new_f1 > current_f1
    scores = {
        "test_macro_f1": new_f1,
        "test_accuracy": result.test_metrics["accuracy"],
        "baseline_macro_f1": result.baseline_metrics["macro_f1"],
        "metrics": {
            "new": result.test_metrics,
            "current_version": current_version,
            "current_macro_f1": current_f1,
        },
    }
    promoted = False
    if promote_if_better and wins:
        promote(settings, result.model, engine, **scores)
        promoted = True
    elif engine is not None:
        record_version(engine, result.model, is_current=False, **scores)
    if current_f1 is None:
        message = f"{result.model.version}: macro-F1 {new_f1:.3f}; no current model to compare"
    else:
        verdict = "promoted" if promoted else ("not promoted" if promote_if_better else "kept aside")
        message = (
            f"{result.model.version}: macro-F1 {new_f1:.3f} vs current {current_version} {current_f1:.3f} "
            f"on the fixed test split: {verdict}"
        )
    return RetrainOutcome(result, promoted, new_f1, current_f1, current_version, message)
