"""Datasets as item sequences: download, read, the paper's preprocessing, leave-one-out.

BERT4Rec (Sun et al., 2019, section 4.1) turns ratings into *implicit feedback*: every rating, whatever its stars,
means "this user interacted with this item". Each user's interactions, sorted by time, form one sequence:

    raw file -> load_interactions() -> DataFrame(user, item, timestamp)   raw ids, one row per interaction
             -> preprocess()        -> SequenceData                       k-core filter, one list of ids per user
             -> SequenceData.split()-> LeaveOneOut                        last item = test, second to last = valid

Item ids after preprocessing: 0 = padding, 1..N = the items in the order of their sorted raw ids, N+1 = [mask].
Users are ordered by their sorted raw ids too, so the result never depends on the order of lines in the file.

Where the files come from: ``download`` fetches the GroupLens zip, checks its sha256 and unpacks it into
``data/<name>/``, recording the sha256 of every unpacked file in ``data/<name>/SHA256SUMS``. Files you put there
yourself (names in ``KNOWN_DATASETS``) are used too. Before every use the files of a known dataset are verified
(``verify_dataset_files``): against that manifest, else against the published file's sha256 where we know it, else
for plausibility (format, exact number of lines, a complete last line). A damaged file is never used: the error
says which file and what to do. MovieLens may not be redistributed, so no data file is part of this repository.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from io import StringIO
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .files import MANIFEST, atomic_write, file_hash, read_manifest, write_manifest

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
               "-d", str(dest_dir)] + ([] if progress else ["-q"])
    done = subprocess.run(command, capture_output=not progress, text=True)
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
    for number, fetch in enumerate(sources):
        try:
            fetch()
        except (ConnectionError, ChecksumError) as error:
            failures.append(error)
            continue
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


def _first_line(path: Path) -> tuple[int, str]:
    with open(path, encoding="latin-1") as f:
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
    raise ValueError(f"{path}, line {number}: cannot tell the format from {first!r}; expected 'user item', "
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
    with open(path, encoding="latin-1") as f:
        for number, line in enumerate(f, 1):
            if number <= skip or not line.strip():
                continue
            fields = line.split() if sep == r"\s+" else line.rstrip("\r\n").split(sep)
            if len(fields) != len(names):
                return (f"{path}, line {number}: expected {len(names)} fields ({', '.join(names)}), found "
                        f"{len(fields)} in {line.rstrip()!r}; the file is truncated or malformed.")
            for name, value in zip(names, fields):
                try:
                    kinds.get(name, str)(value)
                except ValueError:
                    what = "an integer" if kinds[name] is int else "a number"
                    return f"{path}, line {number}: {name} {value!r} is not {what}; the file is malformed."
    return None


def read_interactions(path: str | Path) -> pd.DataFrame:
    """Read one interactions file (any format in FORMATS) -> DataFrame with columns user, item, timestamp (int64).

    Files without times ('user item' lines, an .inter with no timestamp) get timestamp = line order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    fmt = detect_format(path)
    sep, names = FORMATS[fmt]
    skip = int(names is None)
    names = names or _header_names(path, sep)
    wanted = [c for c in ("user", "item", "timestamp") if c in names]
    source: Any = path
    if sep == "::":  # pandas' fast C parser takes one-character separators only
        source, sep = StringIO(path.read_text(encoding="latin-1").replace("::", "\t")), "\t"

    def read(id_dtype: str) -> pd.DataFrame:
        dtypes = {"user": id_dtype, "item": id_dtype, "timestamp": "float64"}
        if isinstance(source, StringIO):
            source.seek(0)
        with warnings.catch_warnings():  # a line with too many fields must fail, not be cut short
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(source, sep=sep, header=None, names=names, skiprows=skip, index_col=False,
                               dtype={c: dtypes[c] for c in wanted}, encoding="latin-1", engine="c")[wanted]

    try:
        df = read("int64")
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as error:
        problem = _first_bad_line(path, FORMATS[fmt][0], names, skip, numeric_ids=fmt != "recbole")
        if problem or fmt != "recbole":
            raise ValueError(problem or f"{path} could not be read: {error}") from None
        df = read("str")  # RecBole tokens need not be numbers
    if df.isna().any().any() or len(df) == 0:
        raise ValueError(_first_bad_line(path, FORMATS[fmt][0], names, skip, False) or f"{path} holds no interactions.")
    df["timestamp"] = df["timestamp"].astype("int64") if "timestamp" in df else np.arange(len(df), dtype=np.int64)
    return df[["user", "item", "timestamp"]]


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
        lines = data.decode("utf-8").splitlines()
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
            raise ValueError(f"{path}, line {number}: expected item id{sep}title{sep}..., found {line!r}; the file is "
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
    path, titles, name = _locate(dataset, data_dir)
    df = read_interactions(path)
    df.attrs.update(name=name, titles=read_titles(titles) if titles else {}, path=str(path))
    return df


# ------------------------------------------------------------------------------------------------ preprocessing
def k_core_mask(users: np.ndarray, items: np.ndarray, min_user_count: int = 5, min_item_count: int = 5) -> np.ndarray:
    """Which interactions survive k-core filtering: drop items with < min_item_count interactions, then users with
    < min_user_count, and repeat until nothing changes (dropping users can push items under the limit again).
    ``users``/``items``: integer codes 0..U-1 / 0..I-1. On MovieLens one round is enough: every user has >= 20."""
    _check_counts(min_user_count, min_item_count)
    keep = np.ones(len(users), dtype=bool)
    while True:
        item_count = np.bincount(items[keep], minlength=items.max(initial=-1) + 1)
        new = keep & (item_count[items] >= min_item_count)
        user_count = np.bincount(users[new], minlength=users.max(initial=-1) + 1)
        new &= user_count[users] >= min_user_count
        if new.sum() == keep.sum():
            return new
        keep = new


def _check_counts(min_user_count: Any, min_item_count: Any) -> None:
    for name, value in (("min_user_count", min_user_count), ("min_item_count", min_item_count)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}={value!r} must be a non-negative integer: the k-core keeps users/items with at "
                             "least that many interactions (0 or 1 keeps all; the paper uses 5).")


def preprocess(df: pd.DataFrame, min_user_count: int = 5, min_item_count: int = 5) -> SequenceData:
    """The paper's preprocessing: implicit feedback, k-core filter, group by user, STABLE sort by time, re-index.

    Equal timestamps keep their order in the file (a stable sort), so 'user item' files keep their order exactly.
    """
    missing = {"user", "item", "timestamp"} - set(df.columns)
    if missing:
        raise ValueError(f"preprocess needs columns user, item, timestamp; missing {sorted(missing)}.")
    user_codes, user_ids = pd.factorize(df["user"], sort=True)
    item_codes, item_ids = pd.factorize(df["item"], sort=True)
    keep = k_core_mask(user_codes, item_codes, min_user_count, min_item_count)
    if not keep.any():
        raise ValueError(f"no interactions are left after k-core filtering with min_user_count={min_user_count}, "
                         f"min_item_count={min_item_count}; lower them.")
    users, items, times = user_codes[keep], item_codes[keep], df["timestamp"].to_numpy()[keep]
    order = np.lexsort((np.arange(len(users)), times, users))  # by user, then time, then line: a stable sort
    users, items = users[order], items[order]
    kept_items = np.unique(items)  # sorted codes = sorted raw ids; new id = position + 1
    new_item = np.zeros(len(item_ids), dtype=np.int64)
    new_item[kept_items] = np.arange(1, len(kept_items) + 1)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    sequences = [s.tolist() for s in np.split(new_item[items], starts[1:])]
    raw_items = [_py(item_ids[c]) for c in kept_items]
    titles = df.attrs.get("titles") or {}
    return SequenceData(sequences=sequences, n_items=len(kept_items),
                        user_ids=[_py(user_ids[c]) for c in users[starts]], item_ids=raw_items,
                        titles={i + 1: titles[raw] for i, raw in enumerate(raw_items) if raw in titles},
                        name=str(df.attrs.get("name", "")))


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def load_dataset(dataset: str | Path, data_dir: str | Path = "data", min_user_count: int = 5,
                 min_item_count: int = 5) -> SequenceData:
    """``preprocess(load_interactions(dataset, data_dir), min_user_count, min_item_count)``."""
    _check_counts(min_user_count, min_item_count)  # before reading anything
    return preprocess(load_interactions(dataset, data_dir), min_user_count, min_item_count)


# ------------------------------------------------------------------------------------------------ sequences
@dataclass
class LeaveOneOut:
    """Leave-one-out split. ``train[u]`` = seq[:-2] for every user; the evaluation lists hold one entry per user in
    ``eval_users`` (users with >= 3 items): valid = (seq[:-2] -> seq[-2]), test = (seq[:-1] -> seq[-1]).
    Users with 1 or 2 items keep their whole sequence in ``train`` and are never evaluated.

    With ``include_valid_in_train`` (see ``SequenceData.split``) ``train[u]`` = seq[:-1]: the validation item is
    trained on, as the paper's authors did, and only the test split is still unseen."""

    train: list[list[int]]
    valid_inputs: list[list[int]]
    valid_targets: list[int]
    test_inputs: list[list[int]]
    test_targets: list[int]
    eval_users: list[int]


@dataclass
class SequenceData:
    """One time-ordered list of item ids (1..n_items) per user, plus the raw ids to map back."""

    sequences: list[list[int]]
    n_items: int
    user_ids: list[Any]  # user_ids[u] = raw id of sequences[u]'s user
    item_ids: list[Any]  # item_ids[i - 1] = raw id of item i
    titles: dict[int, str] = field(default_factory=dict)  # item id -> title, where known
    name: str = ""

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def mask_id(self) -> int:
        """[mask] comes right after the last item: the embedding table has n_items + 2 rows."""
        return self.n_items + 1

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_actions(self) -> int:
        return sum(len(s) for s in self.sequences)

    def stats(self) -> dict[str, float]:
        users, items, actions = self.n_users, self.n_items, self.n_actions
        return {"users": users, "items": items, "actions": actions, "avg_length": actions / max(users, 1),
                "density": actions / max(users * items, 1)}

    def split(self, include_valid_in_train: bool = False) -> LeaveOneOut:
        """Leave-one-out split. ``include_valid_in_train=True`` is the protocol of the paper's code (its
        gen_data_fin.py "puts validate into train"): train on everything but the last item, test on the last.
        The validation lists are the same either way, but then they are no longer held out."""
        evaluated = [u for u, s in enumerate(self.sequences) if len(s) >= 3]
        seqs = self.sequences
        cut = -1 if include_valid_in_train else -2
        return LeaveOneOut(train=[s[:cut] if len(s) >= 3 else list(s) for s in seqs],
                           valid_inputs=[seqs[u][:-2] for u in evaluated], valid_targets=[seqs[u][-2] for u in evaluated],
                           test_inputs=[seqs[u][:-1] for u in evaluated], test_targets=[seqs[u][-1] for u in evaluated],
                           eval_users=evaluated)

    def item_counts(self, include_valid_in_train: bool = False) -> torch.Tensor:
        """LongTensor (n_items + 1,): how often each item occurs in the TRAINING part; index 0 (padding) = 0."""
        flat = torch.tensor([i for s in self.split(include_valid_in_train).train for i in s], dtype=torch.long)
        return torch.bincount(flat, minlength=self.n_items + 1)

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint records about the data it was trained on, so that it can refuse other data later:
        the name, the numbers of users and items, a sha256 of the item mapping (the raw id of every item id -- a
        model's output column i means item_ids[i - 1] and nothing else) and a sha256 of the sequences (what the
        leave-one-out split, and so every metric, is computed from)."""
        mapping = json.dumps(self.item_ids, default=str).encode()
        lengths = np.array([len(s) for s in self.sequences], dtype=np.int64)
        flat = np.fromiter(chain.from_iterable(self.sequences), dtype=np.int64, count=int(lengths.sum()))
        return {"name": self.name, "n_users": self.n_users, "n_items": self.n_items,
                "item_ids_sha256": hashlib.sha256(mapping).hexdigest(),
                "sequences_sha256": hashlib.sha256(lengths.tobytes() + flat.tobytes()).hexdigest()}

    def title(self, item_id: int) -> str:
        if item_id == self.pad_id:
            return "[pad]"
        if item_id == self.mask_id:
            return "[mask]"
        return self.titles.get(item_id) or f"item {self.item_ids[item_id - 1]}"


def synthetic_sequences(n_users: int = 200, n_items: int = 50, min_len: int = 10, max_len: int = 30, seed: int = 0,
                        p_follow: float = 0.8, zipf: float = 1.0) -> SequenceData:
    """Random sequences with a planted rule a model can learn: each item i has a fixed successor ``next[i]``
    (a hidden random permutation). After item i, a user picks ``next[i]`` with probability ``p_follow``, otherwise a
    popular item (probability of the k-th most popular item ~ 1 / k**zipf). Raw ids = new ids = 1..n_items."""
    if n_items < 2 or not 1 <= min_len <= max_len or n_users < 1 or not 0.0 <= p_follow <= 1.0:
        raise ValueError(f"synthetic_sequences needs n_users >= 1, n_items >= 2, 1 <= min_len <= max_len and "
                         f"0 <= p_follow <= 1; got {n_users=}, {n_items=}, {min_len=}, {max_len=}, {p_follow=}.")
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items) + 1  # successor[i - 1] = next item after i
    popularity = 1.0 / np.arange(1, n_items + 1) ** zipf
    popularity = popularity[rng.permutation(n_items)] / popularity.sum()
    steps = np.empty((n_users, max_len), dtype=np.int64)  # all users step by step at once: fast
    steps[:, 0] = rng.choice(n_items, size=n_users, p=popularity) + 1
    for t in range(1, max_len):
        follow = rng.random(n_users) < p_follow
        steps[:, t] = np.where(follow, successor[steps[:, t - 1] - 1], rng.choice(n_items, size=n_users, p=popularity) + 1)
    lengths = rng.integers(min_len, max_len + 1, size=n_users)
    return SequenceData(sequences=[row[:n].tolist() for row, n in zip(steps, lengths)], n_items=n_items,
                        user_ids=list(range(1, n_users + 1)), item_ids=list(range(1, n_items + 1)), name="synthetic")
