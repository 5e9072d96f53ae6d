"""Plumbing, NOT taught: where the interaction files come from and how they are read. Notebook 01 teaches
``data.py`` (the paper's preprocessing); this module is what makes ``load_movielens``-style one-liners safe.

* **Known datasets** (``KNOWN_DATASETS``): ml-100k, ml-1m, ml-20m (GroupLens zips), beauty and steam (the BERT4Rec
  authors' preprocessed ``user item`` files, no official download: put them in ``data/<name>/``).
* **Downloads and checksums**: ``download`` fetches the GroupLens zip, checks its sha256 and unpacks it into
  ``data/<name>/``, recording the sha256 of every unpacked file in ``data/<name>/SHA256SUMS``. Files you put there
  yourself are used too. Before every use the files of a known dataset are verified (``verify_dataset_files``):
  against that manifest, else against the published file's sha256 where we know it, else for plausibility
  (format, exact number of lines, a complete last line). A damaged file is never used: the error says which file
  and what to do. MovieLens may not be redistributed, so no data file is part of this repository.
* **File formats** (``FORMATS``, ``detect_format``, ``read_interactions``, ``read_titles``): GroupLens u.data /
  ratings.dat / ratings.csv, RecBole's atomic .inter, and SASRec/BERT4Rec ``user item`` lines.
* **Presets** (``PRESETS``, ``preset_for``, ``apply_preset``): per dataset, the paper's and its authors' settings,
  the k-core, and the paper's Table 2 row, so that ``--dataset beauty`` means the paper's Beauty setup.

Longer than ~300 lines on purpose: it is one idea (getting a file in safely) with many small cases, and nothing
in it is needed to understand BERT4Rec.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .files import MANIFEST, atomic_write, file_hash, read_manifest, regular_file, write_manifest

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
# Second source for ml-100k: RecBole's wheel on PyPI carries it in RecBole's "atomic" format. Downloaded, never installed.
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_MEMBERS = ("ml-100k.item", "ml-100k.inter")  # inside the wheel under recbole/dataset_example/ml-100k/


class DatasetUnavailable(FileNotFoundError):
    """A dataset that is neither in ``data_dir`` nor downloadable now. Its message is the whole story (what is
    missing, where to put it, how to switch to ml-100k), so Jupyter shows the message and no traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook: these lines replace the traceback
        return [f"{type(self).__name__}: {line}" if i == 0 else line for i, line in enumerate(str(self).splitlines())]


SWITCH_TO_ML100K = ("To work offline, switch to ml-100k, which a package index also provides "
                    "(python -m minibert4rec download --dataset ml-100k): set MINIBERT4REC_DATASET=ml-100k before "
                    "starting Jupyter, or pass --dataset ml-100k on the command line.")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and which files in ``data_dir/<name>/`` hold it."""

    name: str
    files: tuple[tuple[str, str | None], ...]  # (interactions, titles) pairs; the first pair present is used
    url: str | None = None  # the GroupLens zip; None = no official download
    sha256: str | None = None  # of the zip
    how_to_get: str = ""  # for datasets without a download
    # (file, number of data lines without the header or None, sha256 of the published file or None): what
    # verify_dataset_files checks when no manifest recorded the file's sha256 at extraction
    expected: tuple[tuple[str, int | None, str | None], ...] = ()


KNOWN_DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec("ml-100k", (("u.data", "u.item"), ("ml-100k.inter", "ml-100k.item")), GROUPLENS + "ml-100k.zip",
                           "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", expected=(
                               ("u.data", 100_000, "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
                               ("u.item", 1_682, "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
                               ("ml-100k.inter", 100_000, None))),
    "ml-1m": DatasetSpec("ml-1m", (("ratings.dat", "movies.dat"), ("sequences_by_time.txt", "movies.dat")),
                         GROUPLENS + "ml-1m.zip", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                         expected=(
                             ("ratings.dat", 1_000_209, None),
                             ("movies.dat", 3_883, "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"),
                             ("sequences_by_time.txt", 1_000_209,  # all ratings as 'user item', by time (shared/data)
                              "41a314c194a8e7e282088f90f8e6b70fc075d63ce72f969745bc8945155c11e8"))),
    "ml-20m": DatasetSpec("ml-20m", (("ratings.csv", "movies.csv"),), GROUPLENS + "ml-20m.zip",
                          "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
                          expected=(("ratings.csv", 20_000_263, None), ("movies.csv", 27_278, None))),
    "beauty": DatasetSpec("beauty", (("beauty.txt", None),), how_to_get="the BERT4Rec authors' data/beauty.txt",
                          expected=(("beauty.txt", 353_962,
                                     "f480b7a7403852342ffd8f9809bb30697dd669be31813d0e204b698fec86ef49"),)),
    "steam": DatasetSpec("steam", (("steam.txt", None),), how_to_get="the BERT4Rec authors' data/steam.txt"),
}
# the format each known interactions file must have (a key of FORMATS): ML-1m's ratings saved as u.data is refused
FILE_FORMATS = {"u.data": "u.data", "ml-100k.inter": "recbole", "ratings.dat": "ratings.dat",
                "sequences_by_time.txt": "user item", "ratings.csv": "ratings.csv", "beauty.txt": "user item",
                "steam.txt": "user item"}


class ChecksumError(ValueError):
    """A downloaded archive is not the published one (its sha256 differs): it is moved aside, never used."""


def dataset_spec(name: str) -> DatasetSpec:
    if name not in KNOWN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}, or give the path "
                         "of an interactions file (u.data, ratings.dat, ratings.csv, a RecBole .inter, 'user item' lines).")
    return KNOWN_DATASETS[name]


# ------------------------------------------------------------------------------------------------ files and downloads
def _check_hash(path: Path, expected: str, what: str) -> None:
    got = file_hash(path)
    if got != expected:
        raise ChecksumError(f"checksum mismatch for {path} ({what}): sha256 is {got}, expected {expected}. The file "
                            f"is damaged or not the published one; delete it and run again.")


# ------------------------------------------------------------------------------------------------ verifying the cache
def _count_lines(path: Path) -> tuple[int, bool]:
    """(number of lines, whether the file ends with a newline), in 1 MiB chunks."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    complete = last == b"\n"
    return lines + (0 if complete else 1), complete


def file_problem(spec: DatasetSpec, path: Path, manifest: dict[str, str] | None = None) -> str | None:
    """What is wrong with ``path``, one of the files of the known dataset ``spec``; None when it checks out.

    Three levels, the strongest available wins: the sha256 recorded in the folder's manifest when the file was
    unpacked from a verified download; else the published file's sha256 (``spec.expected``); else plausibility --
    the format ``FILE_FORMATS`` names, the exact number of lines, and a last line that ends with a newline (a file
    cut in the middle of its last line has the right number of lines and well-formed fields, but no newline).
    """
    manifest = read_manifest(path.parent) if manifest is None else manifest
    if not path.is_file() or path.stat().st_size == 0:
        return "the file is empty" if path.is_file() else "the file is missing"
    if path.name in manifest:
        got = file_hash(path)
        return None if got == manifest[path.name] else (
            f"its sha256 {got[:12]}... differs from {manifest[path.name][:12]}..., recorded in {MANIFEST} when it was "
            "unpacked: the file changed since")
    sha = {name: sha for name, _, sha in spec.expected}.get(path.name)
    if sha is not None:
        got = file_hash(path)
        if got == sha:
            return None
        why = _implausible(spec, path)  # say what is wrong where we can tell, not only that the hash differs
        return (f"{why + ', and ' if why else ''}its sha256 {got[:12]}... is not the published file's {sha[:12]}... "
                f"({'' if why else 'edited, truncated, '}another dataset's file or another version?)")
    return _implausible(spec, path)


def _implausible(spec: DatasetSpec, path: Path) -> str | None:
    """The plausibility checks of :func:`file_problem`: format, number of lines, a complete last line."""
    lines = {name: lines for name, lines, _ in spec.expected}.get(path.name)
    wanted = FILE_FORMATS.get(path.name)
    if wanted is not None:
        with open(path, "rb") as f:
            if b"\0" in f.read(1 << 16):
                return "it is a binary file, not text"
        try:
            fmt = detect_format(path)
        except ValueError as error:
            return str(error)
        if fmt != wanted:
            return f"it is in the {fmt!r} format, but {spec.name}'s {path.name} is in the {wanted!r} format"
    if lines is not None:
        found, complete = _count_lines(path)
        found -= FORMATS[wanted][1] is None if wanted else 0  # a header line is not data
        if found != lines:
            return f"it has {found:,} lines where {spec.name}'s {path.name} has {lines:,}"
        if not complete:
            return "its last line does not end with a newline: the file was cut short"
    return None


def _damaged(spec: DatasetSpec, path: Path, problem: str) -> ValueError:
    folder = path.parent
    if spec.url:
        fix = (f"delete the folder {folder} (and {folder.parent / (spec.name + '.zip')} if it is there) and run "
               f"`python -m minibert4rec download --dataset {spec.name} --data-dir {folder.parent}` again")
    else:
        fix = f"put a fresh copy of {spec.how_to_get} at {path}"
    return ValueError(f"{path} is damaged or is not {spec.name}'s {path.name}: {problem}. It was not used; {fix}.")


def verify_dataset_files(spec: DatasetSpec, files: tuple[Path, Path | None]) -> None:
    """Raise ``ValueError`` (naming the file, the problem and the fix) unless every file of ``files``
    (interactions, titles) passes :func:`file_problem`."""
    manifest = read_manifest(files[0].parent)
    for path in files:
        if path is not None and (problem := file_problem(spec, path, manifest)) is not None:
            raise _damaged(spec, path, problem)


def _fetch(url: str, sha256: str, dest: Path, progress: bool) -> None:
    """Download ``url`` to ``dest`` with pooch (progress bar, sha256 check, temporary file then rename)."""
    from .progress import tqdm as _quiet  # noqa: F401  (tqdm.auto imported quietly before pooch imports it)
    import pooch

    pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=dest.name, path=dest.parent, progressbar=progress)


def _pip_download(requirement: str, dest_dir: Path, progress: bool) -> Path:
    """``pip download`` one wheel (no dependencies, never installed) into ``dest_dir``; return its path."""
    command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary=:all:",
               "-d", str(dest_dir), "-q", "--disable-pip-version-check"]
    done = subprocess.run(command, capture_output=True, text=True)  # pip's own lines are noise here
    wheels = sorted(dest_dir.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise ConnectionError(f"`{' '.join(command[2:])}` failed: {(done.stderr or '').strip()[-300:]}")
    return wheels[0]


def _cached(spec: DatasetSpec, folder: Path) -> tuple[Path, Path | None] | None:
    """The first (interactions, titles) pair of ``spec`` whose interactions file is in ``folder``."""
    for interactions, titles in spec.files:
        if (folder / interactions).is_file():
            return folder / interactions, (folder / titles if titles and (folder / titles).is_file() else None)
    return None


def _extract(zip_path: Path, data_dir: Path, name: str, interactions: str) -> None:
    """Unpack ``<name>/*`` from the zip into a temporary folder, then move each file into ``data_dir/<name>/``
    (a rename each); the interactions file moves last, so that its presence means the whole folder is there.
    The sha256 of each file is recorded in ``data_dir/<name>/SHA256SUMS``, against which every later use checks."""
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=f".{name}.") as tmp, zipfile.ZipFile(zip_path) as archive:
        members = [m for m in archive.namelist() if m.startswith(f"{name}/") and ".." not in m and not m.endswith("/")]
        archive.extractall(tmp, members)
        files = sorted(Path(tmp, name).rglob("*"), key=lambda p: p.name == interactions)
        digests = {p.name: file_hash(p) for p in files if p.is_file() and p.parent == Path(tmp, name)}
        for path in (p for p in files if p.is_file()):
            dest = data_dir / name / path.relative_to(Path(tmp, name))
            dest.parent.mkdir(parents=True, exist_ok=True)
            if path.name == interactions:  # the sha256 of every file is recorded before the last one lands
                write_manifest(data_dir / name, digests)
            os.replace(path, dest)


def _from_grouplens(spec: DatasetSpec, data_dir: Path, progress: bool) -> None:
    """The GroupLens zip: reuse ``data_dir/<name>.zip`` when its sha256 is right, else download it (a damaged zip
    already there is moved aside to ``<name>.zip.corrupt`` first); a download with the wrong sha256 is deleted and
    raises :class:`ChecksumError`, so that ``download`` tries the next source."""
    assert spec.url and spec.sha256
    zip_path = data_dir / f"{spec.name}.zip"
    if zip_path.is_file() and file_hash(zip_path) != spec.sha256:
        aside = zip_path.with_name(zip_path.name + ".corrupt")
        os.replace(zip_path, aside)
        warnings.warn(f"{zip_path} is damaged (its sha256 is not the published one); moved it to {aside} and "
                      f"downloading {spec.url} again.", stacklevel=3)
    if not zip_path.is_file():
        try:
            _fetch(spec.url, spec.sha256, zip_path, progress)
        except ValueError as error:  # pooch: the downloaded file's hash is not the known one
            raise ChecksumError(f"checksum mismatch for {spec.url}: {error}") from None
        except OSError as error:  # no network, DNS, HTTP errors (requests' errors are OSErrors)
            raise ConnectionError(f"could not download {spec.url} ({type(error).__name__}: {error})") from None
        try:
            _check_hash(zip_path, spec.sha256, f"the GroupLens {spec.name}.zip")
        except ChecksumError:
            zip_path.unlink()
            raise
    _extract(zip_path, data_dir, spec.name, spec.files[0][0])


def _from_recbole_wheel(data_dir: Path, progress: bool) -> None:
    """ml-100k from the recbole wheel on PyPI: download (never install), verify, copy its two ml-100k files."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_download(RECBOLE_WHEEL, Path(tmp), progress)
        _check_hash(wheel, RECBOLE_SHA256, f"the {RECBOLE_WHEEL} wheel from PyPI")
        with zipfile.ZipFile(wheel) as archive:
            contents = {m: archive.read(f"recbole/dataset_example/ml-100k/{m}") for m in RECBOLE_MEMBERS}
        folder = data_dir / "ml-100k"
        for member, data in contents.items():  # .item first, .inter last (see _extract)
            if member == RECBOLE_MEMBERS[-1]:
                write_manifest(folder, {m: hashlib.sha256(d).hexdigest() for m, d in contents.items()})
            atomic_write(folder / member, data)


def _remove_stale_extractions(data_dir: Path, name: str, older_than_s: float = 600.0) -> None:
    """Delete the temporary folders ``_extract`` left behind when it was killed (``.<name>.XXXX``)."""
    now = time.time()
    for path in data_dir.glob(f".{name}.*"):
        if path.is_dir() and now - path.stat().st_mtime > older_than_s:
            shutil.rmtree(path, ignore_errors=True)


def download(name: str, data_dir: str | Path = "data", progress: bool = True, source: str = "auto") -> Path:
    """Make ``data_dir/<name>/`` hold the dataset, verified, and return that folder.

    Files already there are verified (:func:`verify_dataset_files`) and used; a damaged one raises a
    ``ValueError`` that says what to do, and is never replaced silently. Otherwise the GroupLens zip is downloaded
    (sha256-checked, kept as ``data_dir/<name>.zip``) and unpacked. For ml-100k, when GroupLens cannot be reached
    or sends a damaged file (or ``source="recbole"``), the files come from the recbole wheel on PyPI.
    ``source``: "auto", "grouplens" or "recbole".
    """
    spec, data_dir = dataset_spec(name), Path(data_dir)
    folder = data_dir / spec.name
    if source not in ("auto", "grouplens", "recbole") or (source == "recbole" and name != "ml-100k"):
        raise ValueError(f"source={source!r}: use 'auto' or 'grouplens' ('recbole' exists for ml-100k only).")
    wanted = {"auto": spec, "grouplens": dataclasses.replace(spec, files=spec.files[:1]),
              "recbole": dataclasses.replace(spec, files=spec.files[1:])}[source]
    found = _cached(wanted, folder)
    if found:
        verify_dataset_files(spec, found)
        return folder
    place = " or ".join(str(folder / f) for f, _ in spec.files)
    if spec.url is None:
        raise DatasetUnavailable(f"{name} is not in {folder} and has no official download.\n"
                                 f"Put {spec.how_to_get} ('user item' per line, time-ordered) at {place}.\n"
                                 + SWITCH_TO_ML100K)
    data_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_extractions(data_dir, spec.name)
    failures: list[Exception] = []
    sources = ([lambda: _from_grouplens(spec, data_dir, progress)] if source != "recbole" else [])
    if name == "ml-100k" and source != "grouplens":
        sources.append(lambda: _from_recbole_wheel(data_dir, progress))
    names = ([f"GroupLens ({spec.url})"] if source != "recbole" else []) + (
        [f"the {RECBOLE_WHEEL} wheel on PyPI"] if name == "ml-100k" and source != "grouplens" else [])
    for number, fetch in enumerate(sources):
        if progress:
            print(f"downloading {name} from {names[number]}" + (
                f" (GroupLens failed: {_short(str(failures[-1]), 160)})" if failures else ""), file=sys.stderr, flush=True)
        try:
            fetch()
        except (ConnectionError, ChecksumError) as error:
            failures.append(error)
            continue
        if progress:
            print(f"{name}: got it from {names[number]}", file=sys.stderr, flush=True)
        found = _cached(wanted, folder)
        assert found is not None
        verify_dataset_files(spec, found)
        return folder
    text = "; ".join(str(e) if i == 0 else f"the second source, {RECBOLE_WHEEL} from PyPI, failed too: {e}"
                     for i, e in enumerate(failures))
    if any(isinstance(e, ChecksumError) for e in failures):
        raise ChecksumError(text + ". The damaged download was deleted; run again later, or download "
                            f"{spec.url} on another machine and put it at {data_dir / (name + '.zip')}.")
    failures_text = "; ".join(f if len(f) <= 160 else f[:159] + "…" for f in text.split("; "))
    lines = [f"{name} is not in {folder} and could not be downloaded ({failures_text}).",
             f"Download {spec.url} where there is network, put it at {data_dir / (name + '.zip')} "
             f"(or unzip it so that {place} exists) and run again."]
    raise DatasetUnavailable("\n".join(lines + ([] if name == "ml-100k" else [SWITCH_TO_ML100K])))


def install_shared_copy(name: str, src_dir: str | Path, data_dir: str | Path = "data") -> Path:
    """Copy the files of ``name`` that ``src_dir`` holds (e.g. ``../shared/data/ml-1m``) into ``data_dir/<name>/``.

    Each file is verified first (:func:`file_problem`: the published sha256 or the plausibility checks) and
    copied only when it passes; its sha256 is recorded in the manifest, so later damage is detected."""
    spec, src_dir = dataset_spec(name), Path(src_dir)
    names = [f for pair in spec.files for f in reversed(pair) if f]  # titles before interactions, as in _extract
    present = [f for f in dict.fromkeys(names) if (src_dir / f).is_file()]
    if not any(f in present for f, _ in spec.files):
        raise FileNotFoundError(f"{src_dir} holds none of the {name} interaction files "
                                f"({', '.join(f for f, _ in spec.files)}).")
    for f in present:
        if (problem := file_problem(spec, src_dir / f)) is not None:
            raise _damaged(spec, src_dir / f, problem)
    folder = Path(data_dir) / spec.name
    write_manifest(folder, {f: file_hash(src_dir / f) for f in present})
    for f in present:
        atomic_write(folder / f, copy_from=src_dir / f)
    return folder


# ------------------------------------------------------------------------------------------------ reading files
# format -> (field separator, names of the fields; None = named by the file's header line)
FORMATS: dict[str, tuple[str, list[str] | None]] = {
    "u.data": (r"\s+", ["user", "item", "rating", "timestamp"]),  # GroupLens ml-100k, tab-separated
    "ratings.dat": ("::", ["user", "item", "rating", "timestamp"]),  # GroupLens ml-1m / ml-10m
    "ratings.csv": (",", None),  # GroupLens ml-20m and newer: header userId,movieId,rating,timestamp
    "recbole": ("\t", None),  # RecBole atomic .inter: header user_id:token<TAB>item_id:token<TAB>...
    "user item": (r"\s+", ["user", "item"]),  # SASRec/BERT4Rec: one interaction per line, already in time order
}
ALIASES = {"userid": "user", "user_id": "user", "movieid": "item", "item_id": "item", "itemid": "item"}


BOM = b"\xef\xbb\xbf"


def _short(text: str, limit: int = 80) -> str:
    """``repr`` of a piece of a file, cut to ``limit`` characters: a message about a 5 MB line stays one line."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


def _encoding(path: Path) -> str:
    """latin-1 (the GroupLens files; every byte is a character), or utf-8-sig for a file that starts with a UTF-8
    byte order mark, which would otherwise become part of the first user id ('ï»¿1')."""
    with open(path, "rb") as f:
        return "utf-8-sig" if f.read(3) == BOM else "latin-1"


def _first_line(path: Path) -> tuple[int, str]:
    with open(path, encoding=_encoding(path), errors="replace") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                return number, line.rstrip("\n")
    raise ValueError(f"{path} is empty: it holds no interactions.")


def detect_format(path: str | Path) -> str:
    """Tell the format of an interactions file (a key of FORMATS) from its name and first line."""
    path = Path(path)
    number, first = _first_line(path)
    if path.suffix == ".inter" or ":token" in first:
        return "recbole"
    if path.suffix == ".csv" or "," in first:
        return "ratings.csv"
    if "::" in first and len(first.split("::")) == 4:
        return "ratings.dat"
    if len(first.split()) in (2, 4):
        return "u.data" if len(first.split()) == 4 else "user item"
    raise ValueError(f"{path}, line {number}: cannot tell the format from {_short(first)}; expected 'user item', "
                     "'user<TAB>item<TAB>rating<TAB>timestamp', 'user::item::rating::timestamp', a ratings.csv or .inter.")


def _header_names(path: Path, sep: str) -> list[str]:
    names = [h.split(":")[0].strip().lower() for h in _first_line(path)[1].split(sep)]
    names = [ALIASES.get(n, n) for n in names]
    if not {"user", "item"} <= set(names):
        raise ValueError(f"{path}, line 1: the header {names} needs a user and an item column "
                         "(userId/user_id and movieId/item_id).")
    return names


def _first_bad_line(path: Path, sep: str, names: list[str], skip: int, numeric_ids: bool) -> str | None:
    """Slow but exact: walk the file and describe the first line that does not fit ``names``."""
    kinds = {"rating": float, "timestamp": float} | ({"user": int, "item": int} if numeric_ids else {})
    with open(path, encoding=_encoding(path), errors="replace") as f:
        for number, line in enumerate(f, 1):
            if number <= skip or not line.strip():
                continue
            fields = line.split() if sep == r"\s+" else line.rstrip("\r\n").split(sep)
            if len(fields) != len(names):
                return (f"{path}, line {number}: expected {len(names)} fields ({', '.join(names)}), found "
                        f"{len(fields)} in {_short(line.rstrip())}; the file is truncated or malformed.")
            for name, value in zip(names, fields):
                try:
                    kinds.get(name, str)(value)
                except ValueError:
                    what = "an integer" if kinds[name] is int else "a number"
                    return f"{path}, line {number}: {name} {_short(value)} is not {what}; the file is malformed."
    return None


def read_interactions(path: str | Path) -> pd.DataFrame:
    """Read one interactions file (any format in FORMATS) -> DataFrame with columns user, item, timestamp (int64,
    or float64 when some timestamp is fractional, so that 1.2 still sorts before 1.7).

    Files without times ('user item' lines, an .inter with no timestamp) get timestamp = line order. Timestamps
    must be finite numbers that int64 can hold; ids too large for int64 are kept as text.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    regular_file(path, "interactions file")
    fmt = detect_format(path)
    encoding = _encoding(path)
    sep, names = FORMATS[fmt]
    skip = int(names is None)
    names = names or _header_names(path, sep)
    wanted = [c for c in ("user", "item", "timestamp") if c in names]
    source: Any = path
    if sep == "::":  # pandas' fast C parser takes one-character separators only
        source, sep = StringIO(path.read_text(encoding=encoding).replace("::", "\t")), "\t"

    def read(id_dtype: str) -> pd.DataFrame:
        dtypes = {"user": id_dtype, "item": id_dtype, "timestamp": "float64"}
        if isinstance(source, StringIO):
            source.seek(0)
        with warnings.catch_warnings():  # a line with too many fields must fail, not be cut short
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(source, sep=sep, header=None, names=names, skiprows=skip, index_col=False,
                               dtype={c: dtypes[c] for c in wanted}, encoding=encoding, engine="c")[wanted]

    try:
        df = read("int64")
    except OverflowError:  # ids above 2**63: kept as text (ids are labels, never used as numbers)
        df = read("str")
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as error:
        problem = _first_bad_line(path, FORMATS[fmt][0], names, skip, numeric_ids=fmt != "recbole")
        if problem or fmt != "recbole":
            if problem is None and ("too large" in str(error).lower() or "overflow" in str(error).lower()):
                df = read("str")  # ids above 2**63: kept as text
            else:
                raise ValueError(problem or f"{path} could not be read: {_short(str(error), 200)}") from None
        else:
            df = read("str")  # RecBole tokens need not be numbers
    if df.isna().any().any() or len(df) == 0:
        raise ValueError(_first_bad_line(path, FORMATS[fmt][0], names, skip, False) or f"{path} holds no interactions.")
    df["timestamp"] = _timestamps(path, df["timestamp"]) if "timestamp" in df else np.arange(len(df), dtype=np.int64)
    return df[["user", "item", "timestamp"]]


def _timestamps(path: Path, times: pd.Series) -> pd.Series:
    """int64 timestamps when they are all integers, float64 when some are fractional (never truncated: 1.2 and 1.7
    must not tie); an infinite or out-of-range one (1e30 would wrap to int64's minimum and sort first) is refused."""
    values = times.to_numpy(dtype="float64")
    bad = ~np.isfinite(values) | (np.abs(values) >= 2.0**63)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: timestamp {float(values[row])!r} (interaction {row + 1}) is not a finite time that a "
                         "64-bit integer can hold; fix the file.")
    if np.all(values == np.floor(values)):
        return times.astype("int64")
    return times.astype("float64")


def _raw_id(token: str) -> int | str:
    token = token.strip()
    return int(token) if token.isdigit() else token


def read_titles(path: str | Path) -> dict[int | str, str]:
    """Titles by raw item id from u.item (``id|title|...``), movies.dat (``id::title::genres``), movies.csv or a
    RecBole .item file (``item_id:token<TAB>movie_title:token_seq<TAB>release_year:token...``)."""
    path = Path(path)
    if path.suffix == ".csv":
        movies = pd.read_csv(path, usecols=["movieId", "title"], dtype={"movieId": "int64", "title": str})
        return dict(zip(movies["movieId"].tolist(), movies["title"].tolist()))
    data, titles = path.read_bytes(), {}
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:  # the GroupLens files are latin-1
        lines = data.decode("latin-1").splitlines()
    if not lines:
        raise ValueError(f"{path} is empty: it holds no titles.")
    header = [h.split(":")[0] for h in lines[0].split("\t")] if ":token" in lines[0] else None
    sep = "\t" if header else "::" if "::" in lines[0] else "|"
    for number, line in enumerate(lines, 1):
        if (header and number == 1) or not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) < (len(header) if header else 2):
            raise ValueError(f"{path}, line {number}: expected item id{sep}title{sep}..., found {_short(line)}; the file is "
                             "truncated or malformed.")
        if header:
            row = dict(zip(header, fields))
            year = row.get("release_year", "").strip()
            titles[_raw_id(row["item_id"])] = row.get("movie_title", "").strip() + (f" ({year})" if year else "")
        else:
            titles[_raw_id(fields[0])] = fields[1].strip()
    return titles


def _locate(dataset: str | Path, data_dir: str | Path) -> tuple[Path, Path | None, str]:
    """(interactions file, titles file or None, dataset name) for a known name, a file or a folder."""
    if isinstance(dataset, str) and dataset in KNOWN_DATASETS:
        spec = KNOWN_DATASETS[dataset]
        found = _cached(spec, Path(data_dir) / dataset) or _cached(spec, download(dataset, data_dir))
        assert found is not None
        verify_dataset_files(spec, found)  # before every use: a damaged cache is never read
        return found[0], found[1], dataset
    path = Path(dataset)
    if path.is_dir():
        pairs = [pair for spec in KNOWN_DATASETS.values() for pair in spec.files]
        pairs += [(p.name, p.with_suffix(".item").name) for p in sorted(path.glob("*.inter"))]
        found = _cached(DatasetSpec(path.name, tuple(pairs)), path)
        if found is None:
            raise FileNotFoundError(f"folder {path} holds no known interactions file ({', '.join(p for p, _ in pairs)}).")
        _verify_if_known(path.resolve().name, found)
        return found[0], found[1], path.name
    if path.exists():
        regular_file(path, "interactions file")  # a FIFO would block, /dev/zero never end
    if not path.is_file():
        if isinstance(dataset, str) and not any(c in dataset for c in "/\\."):
            dataset_spec(dataset)  # raises: unknown dataset name
        raise FileNotFoundError(f"{path} does not exist; give a known dataset name ({', '.join(KNOWN_DATASETS)}) "
                                "or the path of an interactions file.")
    titles = {"u.data": "u.item", "ratings.dat": "movies.dat", "ratings.csv": "movies.csv",
              "sequences_by_time.txt": "movies.dat"}.get(path.name, path.stem + ".item")
    generic = path.stem in ("u", "ratings", "sequences_by_time")
    name = path.parent.resolve().name if generic else path.stem
    titles_path = path.parent / titles if (path.parent / titles).is_file() else None
    _verify_if_known(name, (path, titles_path))  # data/ml-100k/u.data given as a path is still ml-100k's file
    return path, titles_path, name


def _verify_if_known(name: str, files: tuple[Path, Path | None]) -> None:
    """A file that will be labelled with a known dataset's name (its folder is ``ml-100k`` ...) and carries one of
    that dataset's file names must pass that dataset's checks: ML-1m's ratings saved as ml-100k/u.data is refused."""
    spec = KNOWN_DATASETS.get(name)
    if spec is not None and any(files[0].name == f for f, _ in spec.files):
        verify_dataset_files(spec, (files[0], files[1] if files[1] is not None and any(
            files[1].name == t for _, t in spec.files) else None))


def load_interactions(dataset: str | Path, data_dir: str | Path = "data") -> pd.DataFrame:
    """Raw interactions of a known dataset (cached in ``data_dir``, downloaded if needed), a file or a folder.

    Columns user, item, timestamp (int64, raw ids); ``df.attrs["titles"]`` (raw item id -> title) and
    ``df.attrs["name"]``.
    """
    path, titles, name = _locate(dataset, "data" if data_dir is None else data_dir)
    df = read_interactions(path)
    df.attrs.update(name=name, titles=read_titles(titles) if titles else {}, path=str(path))
    return df




# ------------------------------------------------------------------------------------------------ presets
# Sources, cited per number below:
#   [run]  the authors' scripts, github.com/FeiSun/BERT4Rec run_<dataset>.sh: max_seq_length, masked_lm_prob,
#          max_predictions_per_seq, prop_sliding_window, mask_prob, dupe_factor, batch_size, learning_rate,
#          num_warmup_steps, num_train_steps, dim;
#   [cfg]  bert_train/bert_config_<dataset>_<dim>.json: hidden/attention dropout, hidden size, heads, layers;
#   [gen]  gen_data_fin.py: windows step back from the end by int(prop_sliding_window * max_seq_length); every
#          window is masked dupe_factor = 10 times (exactly min(max_predictions_per_seq,
#          max(1, round(len * masked_lm_prob))) items each, all replaced by [mask] as mask_prob = 1.0) and once
#          more with only its last item masked, so 1 in 11 samples is a mask-last sample (our last_item_ratio
#          1/11); positions count from the left (right padding); "put validate into train"
#          (our include_valid_in_train=True);
#   [opt]  optimization.py: AdamW, weight decay 0.01 (LayerNorm and bias excluded), clip norm 5.0, linear decay;
#   [T1], [T2]  Sun et al. 2019, Table 1 (statistics) and Table 2 (BERT4Rec's row: sampled protocol, the test
#          item among 100 negatives drawn by popularity). The ML-1m row is the one benchmarks/reproduce.py has
#          always used; Beauty's HR@10 / NDCG@10 are the ones measured runs were compared with; the other cells were copied from
#          the paper's Table 2 -- check them against the PDF before publishing a claim that depends on a digit.
# Note: the authors' mask_prob (1.0) is the share of masked positions that become [mask] (BERT's 80/10/10 rule
# with 100/0/0), not a share of mask-last samples; the mask-last share follows from dupe_factor (1 in 11).
_AUTHORS_COMMON: dict[str, Any] = {
    "hidden_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 2, "hidden_act": "gelu",  # [cfg] *_64.json
    "initializer_range": 0.02,  # [cfg]
    "batch_size": 256, "learning_rate": 1e-4, "warmup_steps": 100,  # [run]
    "weight_decay": 0.01, "clip_grad_norm": 5.0,  # [opt]
    "last_item_ratio": round(1 / 11, 4),  # [gen] dupe_factor = 10 Cloze copies + 1 mask-last per window
    "include_valid_in_train": True,  # [gen]
    "output_bias_init": "zeros",  # the authors' output bias starts at 0 (run.py, get_masked_lm_output)
    # the authors' choices of the BERT4RecConfig options below
    "position_counting": "left",  # [gen] right padding, positions counted from the first item
    "masking": "fixed",  # [gen] exactly min(max_predictions, max(1, round(len * mask_ratio))) masks per window
}
_SHOW_FIRST = ("min_user_count", "min_item_count", "max_seq_length", "mask_ratio", "max_predictions", "masking",
               "last_item_ratio", "window_step", "hidden_dropout_prob", "attn_dropout_prob", "hidden_size",
               "inner_size", "n_heads", "position_counting")
METRICS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")


@dataclass(frozen=True)
class Preset:
    """One dataset's setup: the paper's and its authors' settings (``authors``, in BERT4RecConfig's field names),
    the k-core that turns the file into the paper's data set, the paper's Table 2 row (the paper's, never ours)
    and ``recipe``: the training options our CPU reproduction (benchmarks/reproduce.py) uses instead of the
    authors' 400,000 GPU steps. ``extra``: the authors' numbers that have no config field (dupe_factor ...)."""

    name: str
    dataset: str  # the KNOWN_DATASETS entry whose files it reads
    min_user_count: int
    min_item_count: int
    authors: dict[str, Any]
    paper_row: dict[str, float]
    paper_stats: dict[str, float]  # [T1] users, items, actions, avg_length
    recipe: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def options(self, recipe: bool = False) -> dict[str, Any]:
        """The preset's option values: the k-core, then the authors' settings (then the recipe's, if asked)."""
        kcore = {"min_user_count": self.min_user_count, "min_item_count": self.min_item_count}
        values = {**kcore, **self.authors, **(self.recipe if recipe else {})}
        first = [k for k in _SHOW_FIRST if k in values]  # what differs between datasets first, then the rest
        return {k: values[k] for k in first + [k for k in values if k not in first]}


# the ML-1m reproduction recipe (README, "Leaving the popularity plateau"; benchmarks/reproduce.py's defaults):
# batch 32, lr 2e-3, 500 warm-up steps, dropout 0.1, mask-last share 0.1, output bias at log popularity
_RECIPE_LONG = {"batch_size": 32, "learning_rate": 2e-3, "warmup_steps": 500, "hidden_dropout_prob": 0.1,
                "attn_dropout_prob": 0.1, "last_item_ratio": 0.1, "weight_decay": 0.0, "epochs": 105,
                "output_bias_init": "popularity"}
# short histories, 54k items (measured Beauty runs): batch 64 (batch 32 cost 1.7x per sequence), lr 2e-3
# (4e-3 stayed on the popularity plateau for 10 epochs), dropout 0.1 (the paper's 0.5 / 0.2 was worse within 26
# minutes). The output bias starts at ZERO, the paper's: the log-popularity start that helps ML-1m leave its plateau
# hurts Beauty (H200, 10-epoch schedule, seed 0, test sampled NDCG@10 0.172 with zeros vs 0.124 with popularity;
# README, "The paper's four datasets"). 16 epochs: a schedule that ends inside the hour on 2 CPU cores (about
# 2 / 3 min per epoch with 2 / 1 threads), not a tuned value.
_RECIPE_SHORT = {"batch_size": 64, "learning_rate": 2e-3, "warmup_steps": 500, "hidden_dropout_prob": 0.1,
                 "attn_dropout_prob": 0.1, "last_item_ratio": 0.1, "weight_decay": 0.0, "epochs": 16,
                 "output_bias_init": "zeros"}

PRESETS: dict[str, Preset] = {
    "ml-1m": Preset(
        "ml-1m", "ml-1m", min_user_count=5, min_item_count=5,  # the paper's 5-core on the raw ratings (section 4.1)
        authors={**_AUTHORS_COMMON, "max_seq_length": 200, "mask_ratio": 0.2, "max_predictions": 40,  # [run]
                 "window_step": 100,  # [run] prop_sliding_window 0.5 x 200
                 "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2},  # [cfg] bert_config_ml-1m_64.json
        paper_row={"HR@1": 0.2863, "HR@5": 0.5876, "HR@10": 0.6970, "NDCG@5": 0.4454, "NDCG@10": 0.4818,
                   "MRR": 0.4254},  # [T2]
        paper_stats={"users": 6040, "items": 3416, "actions": 1_000_000, "avg_length": 163.5},  # [T1] (1.0m)
        recipe={**_RECIPE_LONG, "window_step": None},  # None = max_seq_length // 2 = 100, today's recipe
        extra={"dupe_factor": 10, "num_train_steps": 400_000, "prop_sliding_window": 0.5},  # [run]
    ),
    "ml-20m": Preset(
        "ml-20m", "ml-20m", min_user_count=5, min_item_count=5,  # as ML-1m: raw GroupLens ratings, 5-core
        authors={**_AUTHORS_COMMON, "max_seq_length": 200, "mask_ratio": 0.2, "max_predictions": 20,  # [run]
                 "window_step": 100,  # [run] 0.5 x 200
                 "hidden_dropout_prob": 0.1, "attn_dropout_prob": 0.1},  # [cfg] bert_config_ml-20m_64.json
        paper_row={"HR@1": 0.3440, "HR@5": 0.6323, "HR@10": 0.7473, "NDCG@5": 0.4967, "NDCG@10": 0.5340,
                   "MRR": 0.4785},  # [T2]
        paper_stats={"users": 138_493, "items": 26_744, "actions": 20_000_000, "avg_length": 144.4},  # [T1]
        recipe=dict(_RECIPE_LONG, epochs=10),  # not run here (no file offline): 10 epochs is a guess
        extra={"dupe_factor": 10, "num_train_steps": 400_000, "prop_sliding_window": 0.5},
    ),
    "beauty": Preset(
        "beauty", "beauty", min_user_count=0, min_item_count=0,  # beauty.txt is already preprocessed: no k-core
        authors={**_AUTHORS_COMMON, "max_seq_length": 50, "mask_ratio": 0.6, "max_predictions": 30,  # [run]
                 "window_step": 5,  # [run] prop_sliding_window 0.1 x 50
                 "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.2},  # [cfg] bert_config_beauty_64.json
        paper_row={"HR@1": 0.0953, "HR@5": 0.2207, "HR@10": 0.3025, "NDCG@5": 0.1599, "NDCG@10": 0.1862,
                   "MRR": 0.1701},  # [T2]
        paper_stats={"users": 40_226, "items": 54_542, "actions": 353_962, "avg_length": 8.8},  # [T1]
        recipe=dict(_RECIPE_SHORT, window_step=5),
        extra={"dupe_factor": 10, "num_train_steps": 400_000, "prop_sliding_window": 0.1},
    ),
    "steam": Preset(
        "steam", "steam", min_user_count=0, min_item_count=0,  # steam.txt is already preprocessed: no k-core
        authors={**_AUTHORS_COMMON, "max_seq_length": 50, "mask_ratio": 0.4, "max_predictions": 20,  # [run]
                 "window_step": 25,  # [run] prop_sliding_window 0.5 x 50
                 # [run] dim=256 -> [cfg] bert_config_steam_256.json: 256 wide, 8 heads, dropout 0.2 / 0.2
                 "hidden_size": 256, "inner_size": 1024, "n_heads": 8,
                 "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2},
        paper_row={"HR@1": 0.0957, "HR@5": 0.2710, "HR@10": 0.4013, "NDCG@5": 0.1842, "NDCG@10": 0.2261,
                   "MRR": 0.1949},  # [T2]
        paper_stats={"users": 281_428, "items": 13_044, "actions": 3_500_000, "avg_length": 12.4},  # [T1]
        recipe=dict(_RECIPE_SHORT, window_step=25, hidden_size=64, inner_size=256, n_heads=2),
        extra={"dupe_factor": 10, "num_train_steps": 800_000, "prop_sliding_window": 0.5},
        note="run_steam.sh trains 256-wide (the paper's text says 64) and calls run_pretraining.py, which the "
             "authors' repository does not contain; the recipe uses 64",
    ),
}
# A file given by path without a known name: the package's defaults and the paper's 5-core, no paper row.
FILE_PRESET = Preset("file", "", min_user_count=5, min_item_count=5, authors={}, paper_row={}, paper_stats={},
                     note="no paper row; name a preset (--preset beauty ...) to use a dataset's settings")


def preset_for(dataset: str | Path, preset: str | None = None) -> Preset:
    """The preset of ``dataset``: ``preset`` when given (a file given by path in BERT4Rec's format, e.g.
    ``preset_for("~/beauty.txt", "beauty")``), else the known name (``"beauty"``), else the name the file
    carries (``.../beauty.txt`` -> beauty, ``.../ml-1m/ratings.dat`` -> ml-1m), else :data:`FILE_PRESET`.
    An unknown preset name raises ``ValueError`` listing the known ones."""
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)} (each carries the "
                             "paper's settings for that dataset). Leave --preset out to use the package's defaults.")
        return PRESETS[preset]
    if isinstance(dataset, str) and dataset in PRESETS:
        return PRESETS[dataset]
    path = Path(dataset).expanduser()
    for name in (path.stem, path.parent.name):
        if name in PRESETS and (path.name == f"{name}.txt" or any(path.name == f for f, _ in
                                                                   KNOWN_DATASETS[PRESETS[name].dataset].files)):
            return PRESETS[name]
    return FILE_PRESET


def option_flag(name: str) -> str:
    """The command-line flag of an option: ``mask_ratio`` -> ``--mask-ratio``; ``learning_rate`` -> ``--lr``."""
    return "--lr" if name == "learning_rate" else "--" + name.replace("_", "-")


def apply_preset(preset: str | Preset, explicit: Mapping[str, Any] | None = None, *, recipe: bool = False,
                 only: Iterable[str] | None = None,
                 flags: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Apply a preset under the options the user gave; return ``(options, lines)``.

    * ``preset``: a name in :data:`PRESETS` (or a :class:`Preset`, e.g. from :func:`preset_for`);
    * ``explicit``: ONLY the options the user gave (e.g. the command-line options whose value is not None), by
      config field name (``mask_ratio``) or k-core name (``min_user_count``). They win over the preset;
    * ``recipe``: also apply the preset's CPU training recipe (benchmarks/reproduce.py) over the authors' values;
    * ``only``: apply only these preset keys (e.g. the fields BERT4RecConfig has today);
    * ``flags``: the flag that set an option, where it is not :func:`option_flag`'s (``{"hidden_dropout_prob":
      "--dropout"}``), for the override lines.

    ``options`` = the preset's values, overridden by ``explicit``: pass ``min_user_count``/``min_item_count`` to
    ``load_dataset`` and the rest to ``BERT4RecConfig``. ``lines`` are what a command prints, e.g.::

        preset beauty: min_user_count=0, min_item_count=0, max_seq_length=50, mask_ratio=0.6, ...
        --mask-ratio 0.4 overrides the preset's 0.6

    >>> options, lines = apply_preset("beauty", {"mask_ratio": 0.4})
    >>> options["mask_ratio"], options["max_seq_length"], options["min_item_count"]
    (0.4, 50, 0)
    >>> lines[-1]
    "--mask-ratio 0.4 overrides the preset's 0.6"
    """
    if not isinstance(preset, Preset):
        preset = preset_for(preset, preset)  # an unknown name raises, listing the known ones
    values = preset.options(recipe=recipe)
    if only is not None:
        keep = set(only)
        values = {k: v for k, v in values.items() if k in keep}
    explicit = dict(explicit or {})
    shown = ", ".join(f"{k}={v}" for k, v in values.items()) or "no settings (the package's defaults)"
    lines = [f"preset {preset.name}{' (with the CPU recipe)' if recipe else ''}: {shown}"
             + (f" ({preset.note})" if preset.note else "")]
    for key, value in explicit.items():
        if key in values and values[key] != value:
            lines.append(f"{(flags or {}).get(key) or option_flag(key)} {value} overrides the preset's {values[key]}")
    return {**values, **explicit}, lines
