"""Benchmark: stage predictions per second on one core, against the plain baseline.

    .venv/bin/python -m bench.classify [--n 100000] [--model META.json]

Builds N texts of mixed length (from a few words to ~2,000 characters) out
of the corpus, then times ``StageModel.predict`` of the current (or given)
model and the plain baseline (TF-IDF + logistic regression, default
settings, trained on the same corpus) on the same texts, in the same run,
both limited to one core. Prints texts per second and the ratio.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def mixed_texts(pool: list[str], n: int, seed: int = 7) -> list[str]:
    """N texts: 60% single examples, 30% two to four joined, 10% long (~2,000 chars)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.6:
            out.append(rng.choice(pool))
        elif roll < 0.9:
            out.append(" ".join(rng.choice(pool) for _ in range(rng.randint(2, 4))))
        else:
            text = ""
            while len(text) < 2000:
                text += " " + rng.choice(pool)
            out.append(text[:2000])
    return out


def rate(predict, texts: list[str], batch: int = 10_000) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        predict(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    from threadpoolctl import threadpool_limits

    from engage.settings import load_settings
    from models.registry import load_current
    from models.stage_classifier import build_baseline, load_corpus, load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--model", type=Path, help="metadata JSON of the model (default: current)")
    args = parser.parse_args()

    model = load_model(args.model) if args.model else load_current(load_settings())
    train, test = load_corpus()
    texts = mixed_texts([e.text for e in train + test], args.n)
    mean_len = sum(map(len, texts)) / len(texts)
    baseline = build_baseline().fit([e.text for e in train], [e.label for e in train])
    with threadpool_limits(limits=1):
        rate(model.predict, texts[:2000])  # warm up
        ours = rate(model.predict, texts)
        base = rate(baseline.predict_proba, texts)
    print(f"texts: {len(texts):,} (mean {mean_len:.0f} characters), one core")
    print(f"model {model.version}: {ours:,.0f} texts/s")
    print(f"baseline (TF-IDF + LR, defaults): {base:,.0f} texts/s")
    print(f"ratio ours/baseline: {ours / base:.2f}")


if __name__ == "__main__":
    main()
