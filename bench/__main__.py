"""``python -m bench`` (``make bench``): every benchmark, one after the other.

Each prints its figures and its ratio against a plain baseline; the numbers
recorded in docs/benchmarks.md come from these runs.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    ("classify", []),
    ("reports", []),
    ("collect", ["--baseline-sample", "100"]),
    ("facts", ["--backend", "both", "--full-days", "30"]),
]


def main() -> int:
    failed = []
    for name, args in BENCHMARKS:
        print(f"\n=== bench.{name} {' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, "-m", f"bench.{name}", *args])
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
