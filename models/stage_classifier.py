"""The buying-journey stage classifier: training, evaluation, safe artifacts.

One scikit-learn ``Pipeline`` holds all preprocessing (text normalisation,
word and character n-gram TF-IDF) and a linear model with calibrated
probabilities. Hyperparameters are chosen by cross-validation on the
training split only; the fixed test split (``models/corpus/test_*.jsonl``)
is never seen by ``fit``.

Artifacts are skops files (no pickle) with a JSON metadata file beside
them: version, training-data hash, metrics, library versions and the
artifact's own SHA-256. ``load_model`` refuses a file whose hash does not
match, whose metadata is missing, or that contains any type outside an
explicit allow-list.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engage.errors import ModelError

LABELS = ("awareness", "consideration", "evaluation", "decision", "adoption", "off_topic")
UNCERTAIN = "uncertain"
CORPUS_DIR = Path(__file__).parent / "corpus"
SHIPPED_DIR = Path(__file__).parent / "artifacts"
TEST_PREFIX = "test_"  # every test_*.jsonl is part of the fixed test split
MAX_CHARS = 2_000  # texts are classified on their first 2,000 characters
RANDOM_STATE = 20261122

_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"(?<!\w)@\w[\w.]*")
_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")
# '?', '!' and money signs carry meaning ("pricing?"): they become words.
_SIGNS = (
    ("?", " xqx "),
    ("!", " xbangx "),
    ("$", " xmoneyx "),
    ("%", " xpctx "),
    ("€", " xmoneyx "),
    ("£", " xmoneyx "),
)
# ASCII in one C pass: letters lower-cased, digits to 0, everything else a space.
_ASCII_TABLE = bytes(
    (c + 32) if 65 <= c <= 90 else c if (97 <= c <= 122 or c == 95) else 48 if 48 <= c <= 57 else 32
    for c in range(256)
)


def _mask(text: str) -> str:
    if "http" in text or "www." in text:
        text = _URL.sub(" xurlx ", text)
    if "@" in text:
        text = _HANDLE.sub(" xuserx ", text)
    for sign, word in _SIGNS:
        if sign in text:
            text = text.replace(sign, word)
    return text


def tokenize_text(text: str) -> list[str]:
    """Words of a text: lower case, URLs and @handles masked, digits as 0, '?', '!', '$', '%' as words.

    ASCII texts take a fast path (``bytes.translate`` and ``split``); others
    are NFKC-folded and split with a Unicode word regex.
    """
    text = (text or "")[:MAX_CHARS]
    if text.isascii():
        return _mask(text.lower()).encode("ascii").translate(_ASCII_TABLE).decode("ascii").split()
    text = _mask(unicodedata.normalize("NFKC", text).lower())
    return _WORD.findall(_DIGIT.sub("0", text))


def normalise_text(text: str) -> str:
    """The words of ``tokenize_text`` joined by spaces (for display and tests)."""
    return " ".join(tokenize_text(text))


# Every type a stage-model artifact may contain. Loading refuses anything else.
ALLOWED_TYPES = frozenset(
    {
        "models.stage_classifier.tokenize_text",
        "models.features.StageClassifier",
        "models.features.StageFeatures",
        "sklearn.pipeline.Pipeline",
        "sklearn.pipeline.FeatureUnion",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.feature_extraction.text.TfidfTransformer",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.svm._classes.LinearSVC",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.frozen._frozen.FrozenEstimator",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.int64",
        "numpy.str_",
        "builtins.slice",
        "scipy.sparse._csr.csr_matrix",
        "scipy.sparse._csr.csr_array",
    }
)


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass(frozen=True)
class Prediction:
    label: str  # the stored label: the model's, or "uncertain" below the threshold
    model_label: str
    confidence: float
    model_version: str


@dataclass
class StageModel:
    pipeline: Any
    metadata: dict[str, Any]
    path: Path | None = None

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    def predict(self, texts: Sequence[str], min_confidence: float = 0.0) -> list[Prediction]:
        if not texts:
            return []
        proba = self.pipeline.predict_proba(list(texts))
        classes = list(self.pipeline.classes_)
        best = proba.argmax(axis=1)
        out = []
        for row, index in zip(proba, best, strict=True):
            label = classes[index]
            confidence = float(row[index])
            stored = label if confidence >= min_confidence else UNCERTAIN
            out.append(Prediction(stored, label, round(confidence, 4), self.version))
        return out


# --- data ----------------------------------------------------------------


def read_jsonl(path: Path) -> list[Example]:
    """Examples from a JSONL file of {"text", "label"}; errors name the line."""
    examples = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ModelError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise ModelError(f"{path}:{number}: expected an object with 'text' and 'label'")
            text, label = record.get("text"), record.get("label")
            if not isinstance(text, str) or not text.strip():
                raise ModelError(f"{path}:{number}: 'text' must be a non-empty string")
            if label not in LABELS:
                raise ModelError(f"{path}:{number}: label {label!r} is not one of {', '.join(LABELS)}")
            examples.append(Example(text, label))
    return examples


def corpus_files(corpus_dir: Path = CORPUS_DIR) -> tuple[list[Path], list[Path]]:
    """The training files and the fixed test split (``test_*.jsonl``) of a corpus folder."""
    files = sorted(corpus_dir.glob("*.jsonl"))
    test = [p for p in files if p.name.startswith(TEST_PREFIX)]
    train = [p for p in files if not p.name.startswith(TEST_PREFIX)]
    if not train or not test:
        raise ModelError(f"{corpus_dir}: needs training *.jsonl files and {TEST_PREFIX}*.jsonl test files")
    return train, test


def load_corpus(corpus_dir: Path = CORPUS_DIR) -> tuple[list[Example], list[Example]]:
    train_files, test_files = corpus_files(corpus_dir)
    train = [e for f in train_files for e in read_jsonl(f)]
    test = [e for f in test_files for e in read_jsonl(f)]
    test_texts = {e.text for e in test}
    leaked = [e for e in train if e.text in test_texts]
    if leaked:
        raise ModelError(
            f"{len(leaked)} training examples also appear in the test split, e.g. {leaked[0].text[:60]!r}"
        )
    return train, test


def data_hash(examples: Iterable[Example]) -> str:
    digest = hashlib.sha256()
    for e in examples:
        digest.update(e.label.encode())
        digest.update(b"\x1f")
        digest.update(e.text.encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


# --- the pipeline ----------------------------------------------------------


def build_pipeline(c: float = 16.0, char_ngrams: tuple[int, int] = (2, 5)) -> Any:
    """Word 1-2-grams and character n-grams, TF-IDF, logistic regression.

    ``models.features.StageClassifier`` holds the whole pipeline (tokenising,
    features, model) and scores the character n-grams from per-word vectors,
    which makes prediction about as fast as a plain word TF-IDF model.
    """
    from models.features import StageClassifier

    return StageClassifier(
        tokenizer=tokenize_text,
        char_ngram_range=char_ngrams,
        char_min_df=2,
        C=c,
        class_weight="balanced",
        max_iter=3000,
        random_state=RANDOM_STATE,
    )


def build_baseline() -> Any:
    """The plain baseline: TF-IDF and logistic regression with default settings."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline([("tfidf", TfidfVectorizer()), ("model", LogisticRegression(random_state=RANDOM_STATE))])


PARAM_GRID = {
    "C": [4.0, 16.0, 64.0],
    "char_ngram_range": [(2, 4), (2, 5)],
}


def fit(
    train: Sequence[Example],
    *,
    search: bool = True,
    n_jobs: int = 1,
    grid: dict[str, list[Any]] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit the pipeline; with ``search``, pick hyperparameters by 5-fold CV on ``train``."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    texts = [e.text for e in train]
    labels = [e.label for e in train]
    pipeline = build_pipeline()
    if not search:
        pipeline.fit(texts, labels)
        return pipeline, {"cv": None, "params": {}}
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=RANDOM_STATE)
    searcher = GridSearchCV(
        pipeline, grid or PARAM_GRID, scoring="f1_macro", cv=folds, n_jobs=n_jobs, refit=True
    )
    searcher.fit(texts, labels)
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in searcher.best_params_.items()}
    return searcher.best_estimator_, {"cv_macro_f1": round(float(searcher.best_score_), 4), "params": params}


# --- evaluation --------------------------------------------------------------


def evaluate(predicted: Sequence[str], truth: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-label precision/recall/F1 and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(LABELS)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    return {
        "n": len(truth),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(
            float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)), 4
        ),
        "per_label": {
            label: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": labels,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }


def evaluate_model(model: StageModel, examples: Sequence[Example]) -> dict[str, Any]:
    predicted = [p.model_label for p in model.predict([e.text for e in examples])]
    return evaluate(predicted, [e.label for e in examples])


def calibration_error(model: StageModel, examples: Sequence[Example], bins: int = 10) -> float:
    """Expected calibration error: |confidence - accuracy| averaged over confidence bins."""
    predictions = model.predict([e.text for e in examples])
    total = 0.0
    for low in range(bins):
        members = [
            (p.confidence, p.model_label == e.label)
            for p, e in zip(predictions, examples, strict=True)
            if low / bins < p.confidence <= (low + 1) / bins
        ]
        if members:
            confidence = sum(c for c, _ in members) / len(members)
            accuracy = sum(1 for _, ok in members if ok) / len(members)
            total += len(members) / len(examples) * abs(confidence - accuracy)
    return round(total, 4)


def format_report(metrics: dict[str, Any]) -> str:
    """A plain-text evaluation report."""
    from tabulate import tabulate

    lines = [
        f"examples: {metrics['n']}   accuracy: {metrics['accuracy']:.3f}   macro-F1: {metrics['macro_f1']:.3f}"
        + (
            f"   calibration error: {metrics['expected_calibration_error']:.3f}"
            if "expected_calibration_error" in metrics
            else ""
        ),
        "",
        tabulate(
            [
                (label, m["precision"], m["recall"], m["f1"], m["support"])
                for label, m in metrics["per_label"].items()
            ],
            headers=["label", "precision", "recall", "F1", "support"],
            floatfmt=".3f",
        ),
        "",
        "confusion matrix (rows: true label, columns: predicted)",
        tabulate(
            [
                [label, *row]
                for label, row in zip(metrics["labels"], metrics["confusion_matrix"], strict=True)
            ],
            headers=["", *[label[:5] for label in metrics["labels"]]],
        ),
    ]
    return "\n".join(lines)


# --- artifacts -------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def library_versions() -> dict[str, str]:
    import numpy
    import scipy
    import sklearn
    import skops

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }


def save_model(pipeline: Any, out_dir: Path, metadata: dict[str, Any]) -> StageModel:
    """Write ``<version>.skops`` and ``<version>.json`` into ``out_dir``."""
    import skops.io as sio

    out_dir.mkdir(parents=True, exist_ok=True)
    version = metadata["version"]
    artifact = out_dir / f"{version}.skops"
    sio.dump(pipeline, artifact, compression=8)
    meta = {
        **metadata,
        "artifact": artifact.name,
        "artifact_sha256": _sha256(artifact),
        "libraries": library_versions(),
        "labels": list(LABELS),
    }
    (out_dir / f"{version}.json").write_text(
        json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return StageModel(pipeline, meta, artifact)


def load_model(meta_path: Path) -> StageModel:
    """Load an artifact through its metadata file, refusing anything untrusted."""
    import sklearn
    import skops.io as sio

    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{meta_path}: model metadata not found") from None
    except ValueError as exc:
        raise ModelError(f"{meta_path}: model metadata is not valid JSON: {exc}") from exc
    for key in ("version", "artifact", "artifact_sha256", "libraries"):
        if key not in meta:
            raise ModelError(f"{meta_path}: model metadata lacks {key!r}")
    artifact = meta_path.parent / Path(meta["artifact"]).name
    if not artifact.exists():
        raise ModelError(f"{artifact}: model artifact not found")
    if _sha256(artifact) != meta["artifact_sha256"]:
        raise ModelError(
            f"{artifact}: SHA-256 does not match its metadata; refusing to load a tampered artifact"
        )
    trained_with = meta["libraries"].get("scikit-learn", "")
    if trained_with.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        raise ModelError(
            f"{artifact}: trained with scikit-learn {trained_with}, running {sklearn.__version__}; "
            "retrain with `engage model train`"
        )
    untrusted = sio.get_untrusted_types(file=artifact)
    unknown = sorted(set(untrusted) - ALLOWED_TYPES)
    if unknown:
        raise ModelError(f"{artifact}: contains types outside the allow-list: {', '.join(unknown)}")
    pipeline = sio.load(artifact, trusted=untrusted)
    if list(getattr(pipeline, "classes_", [])) != sorted(LABELS):
        raise ModelError(f"{artifact}: the model's classes are not the six stage labels")
    return StageModel(pipeline, meta, artifact)


def new_version(train_hash: str, when: datetime | None = None) -> str:
    when = when or datetime.now(UTC)
    return f"stage-{when:%Y%m%d-%H%M%S}-{train_hash[:8]}"


@dataclass
class TrainResult:
    model: StageModel
    test_metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def train_and_save(
    train: Sequence[Example],
    test: Sequence[Example],
    out_dir: Path,
    *,
    search: bool = True,
    grid: dict[str, list[Any]] | None = None,
    sources: dict[str, Any] | None = None,
) -> TrainResult:
    """Fit on ``train``, score on ``test`` (and the baseline likewise), save the artifact."""
    pipeline, cv = fit(train, search=search, grid=grid)
    if hasattr(pipeline, "calibrate"):
        pipeline.calibrate([e.text for e in train], [e.label for e in train])
    train_hash = data_hash(train)
    version = new_version(train_hash)
    provisional = StageModel(pipeline, {"version": version})
    test_metrics = evaluate_model(provisional, test)
    test_metrics["expected_calibration_error"] = calibration_error(provisional, test)
    test_metrics["temperature"] = round(float(getattr(pipeline, "temperature_", 1.0)), 4)
    baseline = build_baseline().fit([e.text for e in train], [e.label for e in train])
    baseline_metrics = evaluate(list(baseline.predict([e.text for e in test])), [e.label for e in test])
    metadata = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_data_sha256": train_hash,
        "test_data_sha256": data_hash(test),
        "n_train": len(train),
        "n_test": len(test),
        "cross_validation": cv,
        "test_metrics": test_metrics,
        "baseline_test_metrics": baseline_metrics,
        "sources": sources or {},
        "random_state": RANDOM_STATE,
        "max_chars": MAX_CHARS,
    }
    model = save_model(pipeline, out_dir, metadata)
    return TrainResult(model, test_metrics, baseline_metrics)
