"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to a temporary name beside ``path`` and rename it
    over ``path``: readers see the old file or the new one. The temporary name is
    unique per process and thread, so concurrent writers of one path do not clash."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    tmp.replace(path)
    return path
