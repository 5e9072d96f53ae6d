"""Writing files so that a crash never leaves half of one: the package's ONE atomic-write helper, and checksums.

Plumbing, not taught. Every file the package writes (configs, checkpoints, metrics, downloaded data, manifests)
goes through :func:`atomic_write`:

1. the bytes go to a temporary file *next to* the destination (``.<name>.<random>.tmp``, same file system);
2. the temporary file is flushed and ``fsync``-ed, so its bytes are on the disk and not only in the page cache;
3. ``os.replace`` renames it over the destination -- atomic on POSIX and Windows: a reader sees the old file or
   the new one, never a mixture;
4. the folder is ``fsync``-ed too, so that the rename itself survives a power cut.

A ``kill -9`` between 1 and 3 leaves a ``.<name>.<random>.tmp`` behind and the destination untouched;
:func:`remove_stale_temporaries` deletes such leftovers when the next run starts.

The temporary file is created by :func:`tempfile.mkstemp`, which gives mode 0600 (owner only); we set the mode
every other new file gets (0666 minus the umask, usually 0644), so that downloads and checkpoints are readable by
the group and others, like any download.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read the umask is to set it ...
    os.umask(mask)  # ... and put it back at once
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class WriteError(ValueError):
    """A file could not be written (read-only folder, full disk, no permission ...): one line naming the path and
    the cause; a ``ValueError``, what the command line reports as one line."""


def _write_error(dest: Path, error: BaseException) -> WriteError | None:
    """The one-line error for a failed write of ``dest``, or None when ``error`` is not a write failure."""
    code = getattr(error, "errno", None)
    text = str(error)
    if code is None and isinstance(error, RuntimeError) and ("file write failed" in text or "errno 28" in text.lower()
                                                             or "No space left" in text):
        code = errno.ENOSPC
    if not isinstance(error, OSError) and code is None:
        return None
    causes = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
              errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EDQUOT: "the disk quota is exceeded"}
    cause = causes.get(code) or (os.strerror(code) if isinstance(code, int) else text) or type(error).__name__
    return WriteError(f"cannot write {dest}: {cause}; free some space, or choose a writable folder.")


def regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is a regular file (after following links); else a one-line ``ValueError`` /
    ``FileNotFoundError``: a FIFO, a device (/dev/zero) or a folder would block, never end, or fail later."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist.") from None
    except OSError as error:
        raise ValueError(f"{what} {path} cannot be read ({error.strerror or error}).") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"{what} {path} is a folder; give the path of a file.")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if (stat.S_ISCHR(mode) or stat.S_ISBLK(
            mode)) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise ValueError(f"{what} {path} is {kind}; give a regular file.")
    return path


def atomic_write(dest: str | Path, data: bytes | str | None = None, *, copy_from: str | Path | None = None,
                 writer: Callable[[BinaryIO], None] | None = None) -> Path:
    """Write ``dest`` atomically and durably; return it. Give exactly one of:

    * ``data``: the bytes (or text, written as UTF-8);
    * ``copy_from``: a file to copy;
    * ``writer``: a function that writes into the open binary file, e.g. ``lambda f: torch.save(state, f)``.

    If anything fails (or the process is interrupted) the temporary file is removed and ``dest`` is unchanged.
    """
    if sum(x is not None for x in (data, copy_from, writer)) != 1:
        raise ValueError("atomic_write needs exactly one of data, copy_from or writer.")
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=TMP_SUFFIX)
    except OSError as error:
        raise _write_error(dest, error) from None  # type: ignore[misc]
    try:
        with os.fdopen(fd, "wb") as out:
            if copy_from is not None:
                with open(copy_from, "rb") as src:
                    shutil.copyfileobj(src, out)
            elif writer is not None:
                writer(out)
            else:
                out.write(data.encode("utf-8") if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600
        os.replace(tmp, dest)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        translated = None if isinstance(error, WriteError) else _write_error(dest, error)
        if translated is not None:
            raise translated from None
        raise
    _fsync_folder(dest.parent)
    return dest


def stale_temporaries(folder: str | Path) -> list[Path]:
    """Temporary files :func:`atomic_write` left in ``folder`` when it was killed (plus the ``<name>.tmp`` files of
    older versions of the package)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(TMP_SUFFIX)
                  and (p.name.startswith(".") or p.name in LEGACY_TEMPORARIES))


LEGACY_TEMPORARIES = {f"{name}{TMP_SUFFIX}" for name in ("checkpoint.pt", "config.json", "metrics.json", "history.csv")}


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete what :func:`stale_temporaries` finds; return the deleted paths. Call it when a run starts, never
    while another process may be writing into the same folder."""
    removed = []
    for path in stale_temporaries(folder):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def file_hash(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (constant memory, any size)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ manifests
MANIFEST = "SHA256SUMS"


def write_manifest(folder: str | Path, digests: dict[str, str]) -> Path:
    """Record ``{file name: sha256}`` in ``folder/SHA256SUMS`` (merged with the entries already there), in the
    format of ``sha256sum``: check by hand with ``cd folder && sha256sum -c SHA256SUMS``."""
    folder = Path(folder)
    entries = {**read_manifest(folder), **digests}
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(entries.items()))
    return atomic_write(folder / MANIFEST, text)


def read_manifest(folder: str | Path) -> dict[str, str]:
    """``{file name: sha256}`` from ``folder/SHA256SUMS``; empty when there is none. A malformed manifest is an
    error (it would otherwise silently stop protecting the files)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    entries = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{path}, line {number}: expected '<sha256>  <file name>', found {line!r}; the manifest "
                             f"is damaged: delete {path.parent} and download the dataset again.")
        entries[name.lstrip("*")] = digest
    return entries
