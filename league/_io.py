"""Atomic file writes: a reader sees the old file or the new one, never half of one
(and appends to the run's CSV logs, flushed to disk).

Every file of a run directory is written through these helpers: the bytes go
to a temporary file in the same directory (so the final rename never crosses
a file system), are flushed to disk, and `os.replace` swaps the file in.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` in one step; the parent directory must exist."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` in one step; the parent directory must exist."""
    atomic_write_bytes(path, text.encode(encoding))


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk. Some
    # platforms (Windows) cannot open a directory; the rename is still atomic there.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def append_csv_rows(path: Path, header: list[str] | tuple[str, ...], rows: list[list]) -> None:
    """Append `rows` to the CSV at `path` (the header first when the file is new) and
    flush them to disk: the run's append-only logs (history, ladder, PBT events)."""
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        if new:
            writer.writerow(header)
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
