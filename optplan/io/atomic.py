"""Atomic file output: write to a temporary file in the same folder, then rename.

A reader sees either the old file or the whole new one, never half of it; a crash
leaves at most a hidden ``.*.tmp`` file behind.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np


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
    (callers render everything first so a failure writes nothing). Names are checked before
    the first write, and a write that fails midway removes the files this call created, so
    no partial set of outputs is left behind."""
    folder = Path(folder)
    for name in files:
        too_long = [p for p in Path(name).parts if len(os.fsencode(p)) > 255]
        if too_long:
            raise ValueError(f"output name {name[:80]!r}... has a part of more than 255 bytes")
    created: list[Path] = []
    try:
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            path = folder / name
            existed = path.exists()
            atomic_write_bytes(path, data)
            if not existed:
                created.append(path)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------- renderers
# Every table and JSON document optplan writes is rendered here, so that no non-finite number
# reaches an output file: in CSV an absent or unbounded value is an empty cell, in JSON null
# (each table's docs say what an empty cell means, e.g. "holds_to: empty = no upper limit").


def csv_text(df) -> str:
    """A DataFrame as CSV text: floats to 10 significant digits, '\\n' line ends, no index;
    NaN and +-inf as empty cells."""


    out = df.copy()
    for col in out.columns:
        if out[col].dtype.kind == "f":
            out[col] = out[col].where(np.isfinite(out[col]))
    buf = io.StringIO()
    out.to_csv(buf, index=False, lineterminator="\n", float_format="%.10g")
    return buf.getvalue()


def finite_json(obj):
    """``obj`` with numpy scalars made Python numbers and NaN/+-inf made None (JSON null),
    recursively through dicts, lists and tuples."""


    if isinstance(obj, dict):
        return {str(k): finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [finite_json(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    return obj


def json_text(obj, indent: int | None = 2, sort_keys: bool = False, default=None) -> str:
    """``obj`` as JSON text ending in a newline: valid JSON always (non-finite numbers are
    null; ``allow_nan=False`` makes any that slipped through an error, not 'Infinity')."""

    text = json.dumps(finite_json(obj), indent=indent, sort_keys=sort_keys, allow_nan=False, default=default)
    return text + "\n"
