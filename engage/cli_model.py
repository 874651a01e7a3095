"""``engage model ...`` and ``engage label ...``: the stage classifier from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engage.errors import EngageError


def _fail(message: str, code: int = 1) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


@click.group()
def model() -> None:
    """Train, evaluate and use the buying-journey stage classifier."""


@model.command()
@click.option(
    "--corpus",
    type=click.Path(file_okay=False, path_type=Path),
    help="Corpus folder (default: the bundled corpus).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the model (default: $ENGAGE_HOME/models).",
)
@click.option(
    "--search/--no-search",
    default=True,
    show_default=True,
    help="Choose hyperparameters by 5-fold CV on the training split.",
)
@click.option(
    "--with-feedback/--without-feedback",
    default=False,
    show_default=True,
    help="Add analysts' labels from the warehouse.",
)
@click.option(
    "--promote", is_flag=True, help="Make it the current model if it beats the current one on the test split."
)
@click.option(
    "--ship", is_flag=True, help="Write into models/artifacts and make it the shipped model (maintainers)."
)
def train(
    corpus: Path | None, out: Path | None, search: bool, with_feedback: bool, promote: bool, ship: bool
) -> None:
    """Train a new model version on the corpus (and analysts' labels)."""
    from engage.settings import load_settings
    from models import retrain
    from models.stage_classifier import CORPUS_DIR, SHIPPED_DIR, format_report

    settings = load_settings()
    try:
        if ship:
            result = retrain.train_version(corpus or CORPUS_DIR, SHIPPED_DIR, search=search, feedback=[])
            (SHIPPED_DIR / "CURRENT").write_text(result.model.version + ".json\n", encoding="utf-8")
            decision = None
        else:
            outcome = retrain.retrain(
                settings,
                corpus_dir=corpus or CORPUS_DIR,
                out_dir=out,
                search=search,
                use_feedback=with_feedback,
                promote_if_better=promote,
            )
            result, decision = outcome.result, outcome
    except EngageError as exc:
        _fail(str(exc))
    click.echo(f"model {result.model.version} written to {result.model.path}")
    click.echo(format_report(result.test_metrics))
    click.echo(
        f"\nbaseline (TF-IDF + logistic regression, defaults) macro-F1: {result.baseline_metrics['macro_f1']:.3f}"
    )
    if decision is not None and promote:
        click.echo(decision.message)


@model.command()
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL of {text, label}.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--model", "ref", help="Model version or metadata path (default: current).")
def evaluate(data: Path, as_json: bool, ref: str | None) -> None:
    """Score a model on labelled data: accuracy, macro-F1, per label, confusion matrix."""
    from engage.settings import load_settings
    from models.registry import resolve
    from models.stage_classifier import evaluate_model, format_report, read_jsonl

    try:
        stage_model = resolve(load_settings(), ref)
        metrics = evaluate_model(stage_model, read_jsonl(data))
    except EngageError as exc:
        _fail(str(exc))
    metrics["model_version"] = stage_model.version
    if as_json:
        click.echo(json.dumps(metrics))
    else:
        click.echo(f"model {stage_model.version} on {data}")
        click.echo(format_report(metrics))


@model.command()
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.option(
    "--out",
    "out",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="Output JSONL (default: stdout).",
)
@click.option("--model", "ref", help="Model version or metadata path (default: current).")
@click.option(
    "--min-confidence",
    type=float,
    help="Below this the label is 'uncertain' (default: $ENGAGE_MIN_CONFIDENCE or 0.4).",
)
def predict(source, out, ref: str | None, min_confidence: float | None) -> None:  # type: ignore[no-untyped-def]
    """Add label, confidence and model_version to each JSONL line of SOURCE ('-' for stdin)."""
    from engage.settings import load_settings
    from models.registry import resolve
    from transforms.classify import min_confidence as default_threshold

    try:
        stage_model = resolve(load_settings(), ref)
    except EngageError as exc:
        _fail(str(exc))
    threshold = default_threshold() if min_confidence is None else min_confidence
    batch: list[dict[str, object]] = []

    def flush() -> None:
        predictions = stage_model.predict([str(r["text"]) for r in batch], threshold)
        for record, p in zip(batch, predictions, strict=True):
            record.update(label=p.label, confidence=p.confidence, model_version=p.model_version)
            if p.label != p.model_label:
                record["model_label"] = p.model_label
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        batch.clear()

    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            _fail(f"{source.name}:{number}: not valid JSON ({exc})", code=2)
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            _fail(f"{source.name}:{number}: each line needs a string 'text'", code=2)
        batch.append(record)
        if len(batch) >= 2000:
            flush()
    if batch:
        flush()


@model.command("list")
def list_models() -> None:
    """Models trained here and the shipped one; * marks the current."""
    from engage.settings import load_settings
    from models.registry import current_meta_path, model_dir
    from models.stage_classifier import SHIPPED_DIR

    settings = load_settings()
    current = current_meta_path(settings).resolve()
    for folder in (SHIPPED_DIR, model_dir(settings)):
        for meta_path in sorted(folder.glob("stage-*.json")):
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            mark = "*" if meta_path.resolve() == current else " "
            f1 = meta.get("test_metrics", {}).get("macro_f1")
            click.echo(f"{mark} {meta['version']}  test macro-F1 {f1}  {meta_path}")


@model.command()
@click.option("--limit", type=int, help="At most this many items.")
def reclassify(limit: int | None) -> None:
    """Reclassify items predicted by an older model (what the background DAG does)."""
    from engage.pipeline import open_warehouse
    from engage.settings import load_settings
    from models.registry import load_current
    from transforms.classify import reclassify_stale

    settings = load_settings()
    try:
        engine = open_warehouse(settings)
        count = reclassify_stale(engine, load_current(settings), limit=limit)
    except EngageError as exc:
        _fail(str(exc))
    click.echo(f"reclassified {count} items")


@click.group()
def label() -> None:
    """Analysts' corrections of stage labels."""


@label.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--analyst", help="Who corrected them (when the file has no 'analyst' column).")
def label_import(path: Path, analyst: str | None) -> None:
    """Import corrected labels from a CSV with columns item_id or text, label[, analyst, note]."""
    from engage.pipeline import open_warehouse
    from engage.settings import load_settings
    from models.feedback import import_labels

    try:
        engine = open_warehouse(load_settings())
        count = import_labels(engine, path, analyst=analyst)
    except EngageError as exc:
        _fail(str(exc), code=2)
    click.echo(f"{count} labels imported from {path}")
