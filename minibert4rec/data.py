"""Datasets as item sequences: download, read, the paper's preprocessing, leave-one-out.

BERT4Rec (Sun et al., 2019, section 4.1) turns ratings into *implicit feedback*: every rating, whatever its stars,
means "this user interacted with this item". Each user's interactions, sorted by time, form one sequence:

    raw file -> load_interactions() -> DataFrame(user, item, timestamp)   raw ids, one row per interaction
             -> preprocess()        -> SequenceData                       k-core filter, one list of ids per user
             -> SequenceData.split()-> LeaveOneOut                        last item = test, second to last = valid

Item ids after preprocessing: 0 = padding, 1..N = the items in the order of their sorted raw ids, N+1 = [mask].
Users are ordered by their sorted raw ids too, so the result never depends on the order of lines in the file.

Where the files come from: ``download`` fetches the GroupLens zip, checks its sha256 and unpacks it into
``data/<name>/``; files you put there yourself (names in ``KNOWN_DATASETS``) are used as they are. MovieLens may not
be redistributed, so no data file is part of this repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

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


KNOWN_DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec("ml-100k", (("u.data", "u.item"), ("ml-100k.inter", "ml-100k.item")), GROUPLENS + "ml-100k.zip",
                           "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
    "ml-1m": DatasetSpec("ml-1m", (("ratings.dat", "movies.dat"), ("sequences_by_time.txt", "movies.dat")),
                         GROUPLENS + "ml-1m.zip", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
    "ml-20m": DatasetSpec("ml-20m", (("ratings.csv", "movies.csv"),), GROUPLENS + "ml-20m.zip",
                          "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
    "beauty": DatasetSpec("beauty", (("beauty.txt", None),), how_to_get="the BERT4Rec authors' data/beauty.txt"),
    "steam": DatasetSpec("steam", (("steam.txt", None),), how_to_get="the BERT4Rec authors' data/steam.txt"),
}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in KNOWN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}, or give the path "
                         "of an interactions file (u.data, ratings.dat, ratings.csv, a RecBole .inter, 'user item' lines).")
    return KNOWN_DATASETS[name]


# ------------------------------------------------------------------------------------------------ files and downloads
def file_hash(path: str | Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(dest: Path, data: bytes | None = None, copy_from: Path | None = None) -> None:
    """Write a temporary file next to ``dest``, then rename it: a crash never leaves half a file under ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            if copy_from is not None:
                with open(copy_from, "rb") as src:
                    shutil.copyfileobj(src, out)
            else:
                out.write(data or b"")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_hash(path: Path, expected: str, what: str) -> None:
    got = file_hash(path)
    if got != expected:
        raise ValueError(f"checksum mismatch for {path} ({what}): sha256 is {got}, expected {expected}. The file is "
                         f"damaged or not the published one; delete it and run again.")


def _fetch(url: str, sha256: str, dest: Path, progress: bool) -> None:
    """Download ``url`` to ``dest`` with pooch (progress bar, sha256 check, temporary file then rename)."""
    from . import progress  # noqa: F401  (imports tqdm.auto quietly before pooch does: no "IProgress" warning)
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
    (a rename each); the interactions file moves last, so that its presence means the whole folder is there."""
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=f".{name}.") as tmp, zipfile.ZipFile(zip_path) as archive:
        members = [m for m in archive.namelist() if m.startswith(f"{name}/") and ".." not in m and not m.endswith("/")]
        archive.extractall(tmp, members)
        files = sorted(Path(tmp, name).rglob("*"), key=lambda p: p.name == interactions)
        for path in (p for p in files if p.is_file()):
            dest = data_dir / name / path.relative_to(Path(tmp, name))
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)


def _from_grouplens(spec: DatasetSpec, data_dir: Path, progress: bool) -> None:
    assert spec.url and spec.sha256
    zip_path = data_dir / f"{spec.name}.zip"
    fetched = not zip_path.is_file()  # a zip already there (yours, or an earlier download) is checked, not replaced
    if fetched:
        try:
            _fetch(spec.url, spec.sha256, zip_path, progress)
        except ValueError as error:  # pooch: the downloaded file's hash is not the known one
            raise ValueError(f"checksum mismatch for {spec.url}: {error}") from None
        except OSError as error:  # no network, DNS, HTTP errors (requests' errors are OSErrors)
            raise ConnectionError(f"could not download {spec.url} ({type(error).__name__}: {error})") from None
    try:
        _check_hash(zip_path, spec.sha256, f"the GroupLens {spec.name}.zip")
    except ValueError:
        if fetched:
            zip_path.unlink()
        raise
    _extract(zip_path, data_dir, spec.name, spec.files[0][0])


def _from_recbole_wheel(data_dir: Path, progress: bool) -> None:
    """ml-100k from the recbole wheel on PyPI: download (never install), verify, copy its two ml-100k files."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_download(RECBOLE_WHEEL, Path(tmp), progress)
        _check_hash(wheel, RECBOLE_SHA256, f"the {RECBOLE_WHEEL} wheel from PyPI")
        with zipfile.ZipFile(wheel) as archive:
            for member in RECBOLE_MEMBERS:  # .item first, .inter last (see _extract)
                data = archive.read(f"recbole/dataset_example/ml-100k/{member}")
                _atomic_write(data_dir / "ml-100k" / member, data)


def download(name: str, data_dir: str | Path = "data", progress: bool = True, source: str = "auto") -> Path:
    """Make ``data_dir/<name>/`` hold the dataset and return that folder.

    Files already there are used as they are. Otherwise the GroupLens zip is downloaded (sha256-checked, kept as
    ``data_dir/<name>.zip``) and unpacked. For ml-100k, when GroupLens cannot be reached (or ``source="recbole"``),
    the files come from the recbole wheel on PyPI. ``source``: "auto", "grouplens" or "recbole".
    """
    spec, data_dir = dataset_spec(name), Path(data_dir)
    folder = data_dir / spec.name
    if source not in ("auto", "grouplens", "recbole") or (source == "recbole" and name != "ml-100k"):
        raise ValueError(f"source={source!r}: use 'auto' or 'grouplens' ('recbole' exists for ml-100k only).")
    wanted = {"auto": spec, "grouplens": DatasetSpec(name, spec.files[:1]),
              "recbole": DatasetSpec(name, spec.files[1:])}[source]
    if _cached(wanted, folder):
        return folder
    place = " or ".join(str(folder / f) for f, _ in spec.files)
    if spec.url is None:
        raise DatasetUnavailable(f"{name} is not in {folder} and has no official download.\n"
                                 f"Put {spec.how_to_get} ('user item' per line, time-ordered) at {place}.\n"
                                 + SWITCH_TO_ML100K)
    data_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    if source != "recbole":
        try:
            _from_grouplens(spec, data_dir, progress)
            return folder
        except ConnectionError as error:
            failures.append(str(error))
    if name == "ml-100k" and source != "grouplens":
        try:
            _from_recbole_wheel(data_dir, progress)
            return folder
        except ConnectionError as error:
            failures.append(f"the second source, {RECBOLE_WHEEL} from PyPI, failed too: {error}")
    reason = "; ".join(f if len(f) <= 160 else f[:159] + "…" for f in failures)
    lines = [f"{name} is not in {folder} and could not be downloaded ({reason}).",
             f"Download {spec.url} where there is network, put it at {data_dir / (name + '.zip')} "
             f"(or unzip it so that {place} exists) and run again."]
    raise DatasetUnavailable("\n".join(lines + ([] if name == "ml-100k" else [SWITCH_TO_ML100K])))


def install_shared_copy(name: str, src_dir: str | Path, data_dir: str | Path = "data") -> Path:
    """Copy the files of ``name`` that ``src_dir`` holds (e.g. ``../shared/data/ml-1m``) into ``data_dir/<name>/``."""
    spec, src_dir = dataset_spec(name), Path(src_dir)
    names = [f for pair in spec.files for f in reversed(pair) if f]  # titles before interactions, as in _extract
    present = [f for f in dict.fromkeys(names) if (src_dir / f).is_file()]
    if not any(f in present for f, _ in spec.files):
        raise FileNotFoundError(f"{src_dir} holds none of the {name} interaction files "
                                f"({', '.join(f for f, _ in spec.files)}).")
    for f in present:
        _atomic_write(Path(data_dir) / spec.name / f, copy_from=src_dir / f)
    return Path(data_dir) / spec.name


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
        return found[0], found[1], dataset
    path = Path(dataset)
    if path.is_dir():
        pairs = [pair for spec in KNOWN_DATASETS.values() for pair in spec.files]
        pairs += [(p.name, p.with_suffix(".item").name) for p in sorted(path.glob("*.inter"))]
        found = _cached(DatasetSpec(path.name, tuple(pairs)), path)
        if found is None:
            raise FileNotFoundError(f"folder {path} holds no known interactions file ({', '.join(p for p, _ in pairs)}).")
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
    return path, (path.parent / titles if (path.parent / titles).is_file() else None), name


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
    keep = np.ones(len(users), dtype=bool)
    while True:
        item_count = np.bincount(items[keep], minlength=items.max(initial=-1) + 1)
        new = keep & (item_count[items] >= min_item_count)
        user_count = np.bincount(users[new], minlength=users.max(initial=-1) + 1)
        new &= user_count[users] >= min_user_count
        if new.sum() == keep.sum():
            return new
        keep = new


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
