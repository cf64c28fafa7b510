"""The data dir: uploaded datasets stored once by content, safe archive extraction, run outputs.

Layout under ``--data-dir``::

    service.sqlite                 the SQLite database (unless --db names another)
    datasets/<sha256>/...      each distinct uploaded folder, read-only once stored
    runs/<run id>/attempt-<n>/ each attempt's outputs (only the attempt that completes is kept in the run)
    tmp/                       uploads being checked

No name from a request becomes a path: an upload is unpacked member by member after each name
is checked (relative, no ``..``, no drive, no symlink, hard link or device, at most
``Limits.depth`` folders deep), counted (``Limits.files``) and measured as it is written
(``Limits.bytes``; a declared size is never trusted). A dataset's content hash is over its
sorted relative paths and file bytes, so the same folder uploaded as a zip or a tar is stored once.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Bytes read and written at a time while unpacking.
CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Bounds on an upload: total unpacked bytes, number of files, folder depth."""

    bytes: int = 512 * 1024 * 1024
    files: int = 2000
    depth: int = 8


class UploadError(ValueError):
    """An upload refused; ``problems``: one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def safe_name(name: str, limits: Limits) -> PurePosixPath:
    """The relative path an archive member may be written to, or UploadError naming why not."""
    if "\x00" in name or "\\" in name:
        raise UploadError([f"{name!r}: a member name with a NUL or backslash is refused"])
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UploadError([f"{name}: an absolute path is refused"])
    parts = [p for p in path.parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UploadError([f"{name}: a path with '..' is refused"])
    if not parts:
        raise UploadError([f"{name!r}: an empty member name is refused"])
    if len(parts) > limits.depth:
        raise UploadError([f"{name}: more than {limits.depth} folders deep"])
    return PurePosixPath(*parts)


class _Budget:
    def __init__(self, limits: Limits):
        self.limits, self.bytes, self.files = limits, 0, 0

    def file(self, name: str) -> None:
        self.files += 1
        if self.files > self.limits.files:
            raise UploadError([f"more than {self.limits.files} files in the upload (at {name})"])

    def take(self, n: int, name: str) -> None:
        self.bytes += n
        if self.bytes > self.limits.bytes:
            raise UploadError([f"the upload unpacks to more than {self.limits.bytes:,} bytes (at {name})"])


def _write(dest: Path, rel: PurePosixPath, source, budget: _Budget) -> None:
    target = dest.joinpath(*rel.parts)
    if dest.resolve() not in target.resolve().parents:  # belt and braces: never outside dest
        raise UploadError([f"{rel}: resolves outside the upload"])
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as out:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            budget.take(len(chunk), str(rel))
            out.write(chunk)


def unpack(data: bytes, filename: str, dest: Path, limits: Limits) -> None:
    """Unpack an upload (a .zip, .tar, .tar.gz/.tgz, or one plain file named ``filename``)
    into the empty folder ``dest``; UploadError on anything refused (dest may hold part)."""
    budget = _Budget(limits)
    lower = filename.lower()
    if lower.endswith(".zip") or (data[:4] == b"PK\x03\x04" and not lower.endswith((".csv", ".yaml", ".yml"))):
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise UploadError([f"{filename}: not a readable zip archive ({exc})"]) from None
        with archive:
            for info in archive.infolist():
                mode = info.external_attr >> 16
                if info.is_dir():
                    safe_name(info.filename, limits)
                    continue
                rel = safe_name(info.filename, limits)
                kind = stat.S_IFMT(mode)  # 0: no type recorded (a plain file, as most zip tools write)
                if kind and kind != stat.S_IFREG:
                    raise UploadError([f"{info.filename}: only regular files are accepted (a link or device is refused)"])
                budget.file(info.filename)
                with archive.open(info) as src:
                    _write(dest, rel, src, budget)
        return
    if lower.endswith((".tar", ".tar.gz", ".tgz")):
        try:
            archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
        except tarfile.TarError as exc:
            raise UploadError([f"{filename}: not a readable tar archive ({exc})"]) from None
        with archive:
            for member in archive:
                if member.isdir():
                    safe_name(member.name, limits)
                    continue
                rel = safe_name(member.name, limits)
                if not member.isfile():
                    raise UploadError([f"{member.name}: only regular files are accepted (a link or device is refused)"])
                budget.file(member.name)
                src = archive.extractfile(member)
                if src is None:
                    raise UploadError([f"{member.name}: unreadable member"])
                _write(dest, rel, src, budget)
        return
    rel = safe_name(PurePosixPath(filename).name, limits)
    budget.file(filename)
    _write(dest, rel, io.BytesIO(data), budget)


def strip_single_folder(folder: Path) -> Path:
    """An archive of one folder (``demo/instance.yaml``, ...) is that folder's content."""
    entries = [p for p in folder.iterdir()]
    while len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        folder = entries[0]
        entries = list(folder.iterdir())
    return folder


def tree_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def tree_hash(folder: Path) -> str:
    """SHA-256 over the sorted relative paths and the bytes of every file."""
    h = hashlib.sha256()
    for rel in tree_files(folder):
        h.update(rel.encode() + b"\x00")
        with open(folder / rel, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(hashlib.sha256(chunk).digest())
        h.update(b"\x01")
    return h.hexdigest()


class Store:
    """Files of the service under ``root`` (the data dir)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        for sub in ("datasets", "runs", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def scratch(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="upload-", dir=self.root / "tmp"))

    def dataset_dir(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a content hash")
        return self.root / "datasets" / sha256

    def keep_dataset(self, folder: Path, sha256: str) -> Path:
        """Move a checked folder into place (once per content); returns where it is."""
        target = self.dataset_dir(sha256)
        if target.exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix="stage-", dir=self.root / "tmp"))
        shutil.copytree(folder, staging / "d")
        try:
            os.replace(staging / "d", target)  # atomic: a reader sees all of it or nothing
        except OSError:
            if not target.exists():
                raise
        shutil.rmtree(staging, ignore_errors=True)
        for p in target.rglob("*"):
            if p.is_file():
                p.chmod(0o444)
        return target

    def attempt_dir(self, run_id: str, attempt: int) -> Path:
        if not run_id.isalnum():
            raise ValueError("not a run id")
        path = self.root / "runs" / run_id / f"attempt-{attempt}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def output_dir(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if self.root not in path.parents:
            raise ValueError("outside the data dir")
        return path
