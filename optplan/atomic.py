"""Atomic file output: write to a temporary file in the same folder, then rename.

A reader sees either the old file or the whole new one, never half of it; a crash
leaves at most a hidden ``.*.tmp`` file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_files(folder: str | Path, files: dict[str, bytes | str]) -> None:
    """Write several files into ``folder``, each atomically, only after all are rendered
    (callers render everything first so a failure writes nothing)."""
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        atomic_write_bytes(Path(folder) / name, data)
