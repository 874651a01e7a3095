"""The stage classifier: learning, safe artifacts, incremental classification, promotion."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, update

from engage.cli import main
from engage.errors import ModelError
from engage.settings import Settings
from engage.warehouse.db import upsert
from engage.warehouse.schema import content_item, label_feedback, model_version, source, stage_prediction
from models import registry
from models.feedback import import_labels
from models.retrain import retrain
from models.stage_classifier import (
    LABELS,
    build_pipeline,
    evaluate,
    load_corpus,
    load_model,
    normalise_text,
    read_jsonl,
    save_model,
    train_and_save,
)
from transforms.classify import classify_new, reclassify_stale
from transforms.load import content_hash

DATA = Path(__file__).parent / "data"


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(DATA / "tiny_train.jsonl", folder / "train.jsonl")
    shutil.copy(DATA / "tiny_test.jsonl", folder / "test_fixed.jsonl")
    return folder


@pytest.fixture
def trained(tiny_corpus: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    train, test = load_corpus(tiny_corpus)
    return train_and_save(train, test, tmp_path / "models", search=False)


def test_tokenizer_masks_urls_handles_numbers_and_keeps_signs() -> None:
    assert (
        normalise_text("Check https://x.io/a?b=1 @Dana_W paid $4,500?")
        == "check xurlx xuserx paid xmoneyx 0 000 xqx"
    )
    assert normalise_text("Ärzte für 2026 ＡＢＣ!") == "ärzte für 0000 abc xbangx"


def test_fast_scoring_equals_the_explicit_feature_matrix(tiny_corpus: Path) -> None:
    import numpy as np

    train, test = load_corpus(tiny_corpus)
    clf = build_pipeline().fit([e.text for e in train], [e.label for e in train])
    texts = [e.text for e in test] + ["entirely unseen wørds like zxqv and forecastingg", ""]
    assert np.abs(clf.predict_proba(texts) - clf.explicit_predict_proba(texts)).max() < 1e-4


def test_pipeline_learns_and_predicts_unseen_texts(trained) -> None:  # type: ignore[no-untyped-def]
    model = trained.model
    predictions = model.predict(["Zendesk vs Freshdesk: which one has better pricing?", "We are hiring!"])
    assert [p.model_label for p in predictions] == ["evaluation", "off_topic"]
    assert all(0 < p.confidence <= 1 and p.model_version == model.version for p in predictions)
    assert trained.test_metrics["n"] == 6
    assert set(trained.test_metrics["per_label"]) == set(LABELS)


def test_low_confidence_is_stored_as_uncertain(trained) -> None:  # type: ignore[no-untyped-def]
    prediction = trained.model.predict(["banana"], min_confidence=0.99)[0]
    assert prediction.label == "uncertain" and prediction.model_label in LABELS


def test_save_load_round_trip_gives_the_same_predictions(trained) -> None:  # type: ignore[no-untyped-def]
    texts = ["How do teams handle renewals?", "Legal is redlining the contract"]
    loaded = load_model(trained.model.path.with_suffix(".json"))
    assert loaded.version == trained.model.version
    assert loaded.predict(texts) == trained.model.predict(texts)
    meta = loaded.metadata
    assert meta["training_data_sha256"] and meta["libraries"]["scikit-learn"]
    assert meta["test_metrics"]["macro_f1"] == trained.test_metrics["macro_f1"]


def test_a_tampered_artifact_is_refused(trained) -> None:  # type: ignore[no-untyped-def]
    artifact = trained.model.path
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="tampered"):
        load_model(artifact.with_suffix(".json"))


def test_an_artifact_with_types_outside_the_allow_list_is_refused(tmp_path: Path, tiny_corpus: Path) -> None:
    import copy

    from sklearn.preprocessing import FunctionTransformer

    train, _ = load_corpus(tiny_corpus)
    from sklearn.pipeline import Pipeline

    # copy.copy is harmless here, but it is not on the allow-list: loading must refuse it.
    pipeline = Pipeline([("extra", FunctionTransformer(func=copy.copy)), ("model", build_pipeline())])
    pipeline.fit([e.text for e in train], [e.label for e in train])
    model = save_model(
        pipeline, tmp_path / "m", {"version": "stage-evil"}
    )  # hash matches: only the types are wrong
    with pytest.raises(ModelError, match="allow-list"):
        load_model(model.path.with_suffix(".json"))


def test_missing_metadata_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.json")


def test_evaluate_reports_every_metric() -> None:
    metrics = evaluate(["awareness", "evaluation", "evaluation"], ["awareness", "evaluation", "decision"])
    assert metrics["n"] == 3 and metrics["accuracy"] == pytest.approx(2 / 3, abs=1e-3)
    assert metrics["per_label"]["decision"]["recall"] == 0
    assert metrics["confusion_matrix"][LABELS.index("decision")][LABELS.index("evaluation")] == 1


def test_bad_corpus_lines_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "label": "awareness"}\n{"text": "x", "label": "maybe"}\n')
    with pytest.raises(ModelError, match=r"bad.jsonl:2: label 'maybe'"):
        read_jsonl(path)


def _items(engine: Engine, texts: dict[str, str]) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    with engine.begin() as conn:
        upsert(
            conn,
            source,
            [
                {
                    "name": "s",
                    "kind": "rss",
                    "url": "http://x",
                    "is_own": False,
                    "created_at": now,
                    "updated_at": now,
                    "consecutive_failures": 0,
                }
            ],
            key=["name"],
            update=[],
        )
        source_id = conn.execute(select(source.c.source_id)).scalar_one()
        upsert(
            conn,
            content_item,
            [
                {
                    "source_id": source_id,
                    "external_id": key,
                    "kind": "post",
                    "title": None,
                    "body_text": text,
                    "first_collected_at": now,
                    "last_collected_at": now,
                    "collected_date": date(2026, 11, 20),
                    "content_hash": content_hash(None, text),
                    "is_ours": False,
                }
                for key, text in texts.items()
            ],
            key=["source_id", "external_id"],
            update=["body_text", "content_hash"],
        )


def test_incremental_classification_touches_only_new_and_changed_items(engine: Engine, trained) -> None:  # type: ignore[no-untyped-def]
    model = trained.model
    _items(engine, {"a": "Gong vs Chorus pricing?", "b": "We are hiring", "c": "Legal is redlining the MSA"})
    assert classify_new(engine, model) == 3
    assert classify_new(engine, model) == 0
    with engine.begin() as conn:
        conn.execute(update(stage_prediction).values(predicted_at=datetime(2000, 1, 1, tzinfo=UTC)))
    _items(engine, {"b": "We are hiring a data engineer, apply now", "d": "How do teams approach churn?"})
    assert classify_new(engine, model) == 2
    with engine.connect() as conn:
        fresh = (
            conn.execute(
                select(content_item.c.external_id)
                .join(stage_prediction, stage_prediction.c.item_id == content_item.c.item_id)
                .where(stage_prediction.c.predicted_at > datetime(2001, 1, 1, tzinfo=UTC))
                .order_by(content_item.c.external_id)
            )
            .scalars()
            .all()
        )
        total = conn.execute(select(func.count()).select_from(stage_prediction)).scalar_one()
    assert fresh == ["b", "d"] and total == 4


def test_items_of_an_older_model_are_reclassified_in_the_background_step(
    engine: Engine, trained, tmp_path: Path, tiny_corpus: Path
) -> None:  # type: ignore[no-untyped-def]
    _items(engine, {"a": "Gong vs Chorus pricing?", "b": "We are hiring"})
    classify_new(engine, trained.model)
    train, test = load_corpus(tiny_corpus)
    newer = train_and_save(
        train[:-3], test, tmp_path / "newer", search=False
    ).model  # other data: another version
    assert classify_new(engine, newer) == 0  # the daily step does not redo them
    assert reclassify_stale(engine, newer) == 2
    with engine.connect() as conn:
        assert set(conn.execute(select(stage_prediction.c.model_version)).scalars()) == {newer.version}


def _settings(tmp_path: Path, engine: Engine) -> Settings:
    return Settings(home=tmp_path / "home", warehouse_url=str(engine.url), sources_path=tmp_path / "s.yml")


def test_promotion_refuses_a_worse_model_and_records_both_scores(
    sqlite_engine: Engine, tmp_path: Path, tiny_corpus: Path
) -> None:
    settings = _settings(tmp_path, sqlite_engine)
    train, test = load_corpus(tiny_corpus)
    first = train_and_save(train, test, registry.model_dir(settings), search=False)
    registry.promote(settings, first.model, sqlite_engine)  # made current by hand, over the shipped model
    assert registry.load_current(settings).version == first.model.version

    # A corpus whose training labels are scrambled: a worse model.
    worse = tmp_path / "worse"
    worse.mkdir()
    shutil.copy(tiny_corpus / "test_fixed.jsonl", worse / "test_fixed.jsonl")
    rows = [json.loads(line) for line in (tiny_corpus / "train.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):
        row["label"] = LABELS[(LABELS.index(row["label"]) + 1 + i % 5) % 6]
    (worse / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    second = retrain(settings, corpus_dir=worse, search=False, use_feedback=False, engine=sqlite_engine)
    assert not second.promoted and second.current_version == first.model.version
    assert second.new_macro_f1 < second.current_macro_f1
    assert registry.load_current(settings).version == first.model.version
    with sqlite_engine.connect() as conn:
        rows_db = {r.version: r for r in conn.execute(select(model_version))}
    assert rows_db[first.model.version].is_current
    assert not rows_db[second.result.model.version].is_current
    assert (
        json.loads(rows_db[second.result.model.version].metrics_json)["current_macro_f1"]
        == second.current_macro_f1
    )


def test_label_import_validates_and_feeds_retraining(sqlite_engine: Engine, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nsome text,purchase\n")
    with pytest.raises(ModelError, match=r"bad.csv:2: label 'purchase'"):
        import_labels(sqlite_engine, bad)
    good = tmp_path / "good.csv"
    good.write_text(
        "text,label,analyst\nWe signed the order form today,decision,ann\nsame again,Off-Topic,\n"
    )
    assert import_labels(sqlite_engine, good) == 2
    assert import_labels(sqlite_engine, good) == 2  # idempotent
    with sqlite_engine.connect() as conn:
        labels = dict(conn.execute(select(label_feedback.c.text, label_feedback.c.label)).all())
    assert labels == {"We signed the order form today": "decision", "same again": "off_topic"}


def test_cli_evaluate_json_and_predict(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ENGAGE_HOME", str(tmp_path / "home"))
    meta = str(trained.model.path.with_suffix(".json"))
    runner = CliRunner()
    result = runner.invoke(
        main, ["model", "evaluate", "--data", str(DATA / "tiny_test.jsonl"), "--json", "--model", meta]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"accuracy", "macro_f1", "per_label", "n", "confusion_matrix"} <= set(report)
    assert report["n"] == 6

    source_file = tmp_path / "in.jsonl"
    source_file.write_text('{"text": "Gong vs Chorus pricing?", "id": 7}\n\n{"text": "+1"}\n')
    out_file = tmp_path / "out.jsonl"
    result = runner.invoke(
        main, ["model", "predict", str(source_file), "--out", str(out_file), "--model", meta]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["id"] == 7
    assert {"label", "confidence", "model_version"} <= set(lines[0])

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": "no text"}\n')
    result = runner.invoke(main, ["model", "predict", str(bad), "--model", meta])
    assert result.exit_code == 2 and "bad.jsonl:1" in result.output


def test_calibration_is_fitted_saved_and_reported(trained) -> None:  # type: ignore[no-untyped-def]
    meta = trained.model.metadata
    assert 0 < meta["test_metrics"]["temperature"] < 20
    assert 0 <= meta["test_metrics"]["expected_calibration_error"] <= 1
    loaded = load_model(trained.model.path.with_suffix(".json"))
    assert loaded.pipeline.temperature_ == trained.model.pipeline.temperature_
    probabilities = loaded.pipeline.predict_proba(["Gong vs Chorus pricing?", "thanks!"])
    assert abs(probabilities.sum(axis=1) - 1).max() < 1e-6
