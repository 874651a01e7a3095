"""Where a collector's parse work runs: inline, or on worker processes.

Fetching is waiting, parsing is CPU. A run of many sources fetches on
threads (they wait in parallel), but Python threads share one core for
Python code, so ``collect_all`` gives the collectors a ``ParserPool``:
``ctx.parse(parse_feed, body, headers, url=...)`` then runs on one of a
few worker processes, and the threads go on fetching. The function must be
a pure, module-level function of picklable arguments (a body, headers, a
URL) returning a picklable result; everything with side effects -- HTTP,
politeness, raw landing, the warehouse -- stays in the collecting process.

The processes start on the first parse, so a run where every source
answers ``304`` starts none. One source (an Airflow task) parses inline.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)

Result = TypeVar("Result")


def parse_inline(fn: Callable[..., Result], /, *args: Any, **kwargs: Any) -> Result:
    return fn(*args, **kwargs)


class ParserPool:
    """Runs parse functions on ``processes`` worker processes, started on first use.

    A worker that dies (a parser crashing the interpreter, the kernel's OOM
    killer) breaks the pool: it is replaced and the call tried once more, so
    the other sources parsing at that moment are not lost with it.
    """

    def __init__(self, processes: int) -> None:
        self.processes = max(1, processes)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def _current(self, broken: ProcessPoolExecutor | None = None) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the parser pool is closed")
            if self._pool is None or self._pool is broken:
                if broken is not None:
                    log.warning("a parser process died; starting new ones")
                    broken.shutdown(wait=False, cancel_futures=True)
                # spawn: the collecting process runs threads, and forking one is unsafe.
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=context)
            return self._pool

    def __call__(self, fn: Callable[..., Result], /, *args: Any, **kwargs: Any) -> Result:
        pool = self._current()
        try:
            return pool.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool:
            return self._current(broken=pool).submit(fn, *args, **kwargs).result()

    @property
    def started(self) -> bool:
        return self._pool is not None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
