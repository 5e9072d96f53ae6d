"""Tests of minibert4rec.data on tiny files written here; the network is always monkeypatched away."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from minibert4rec.data import (KNOWN_DATASETS, SequenceData, download, k_core_mask, load_dataset, load_interactions,
                               preprocess, synthetic_sequences)
from minibert4rec.support import datasets
from minibert4rec.support.datasets import install_shared_copy, read_interactions, read_titles

SHARED = Path(__file__).parents[2] / "shared" / "data"

# The same 5 interactions in every format: (user, item, rating, timestamp), in file order.
ROWS = [(2, 10, 5, 300), (1, 20, 3, 200), (1, 10, 4, 100), (2, 30, 1, 100), (1, 30, 2, 200)]


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def as_rows(df: pd.DataFrame) -> list[tuple[int, int, int]]:
    assert list(df.columns) == ["user", "item", "timestamp"] and (df.dtypes == "int64").all()
    return list(df.itertuples(index=False, name=None))


@pytest.fixture
def offline(monkeypatch):
    """Every network function raises, like a machine without internet."""
    def no_network(*args, **kwargs):
        raise ConnectionError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets, "_fetch", no_network)
    monkeypatch.setattr(datasets, "_pip_download", no_network)


@pytest.fixture
def unchecked(monkeypatch):
    """Known datasets without their published line counts and hashes, so that tiny hand-written files pass
    (tests/test_bad_inputs.py checks that the real checks refuse them)."""
    for name, spec in KNOWN_DATASETS.items():
        monkeypatch.setitem(datasets.KNOWN_DATASETS, name, dataclasses.replace(spec, expected=()))


# ------------------------------------------------------------------------------------------------ readers
@pytest.mark.parametrize("name, text", [
    ("u.data", "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS)),
    ("ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ROWS)),
    ("ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r}.5,{t}\n" for u, i, r, t in ROWS)),
    ("x.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
     + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS)),
])
def test_readers_give_user_item_timestamp(tmp_path, name, text):
    df = read_interactions(write(tmp_path / name, text))
    assert as_rows(df) == [(u, i, t) for u, i, _, t in ROWS]


def test_user_item_lines_get_line_order_as_time(tmp_path):
    df = read_interactions(write(tmp_path / "seq.txt", "1 5\n1 3\n\n2 5\n"))
    assert as_rows(df) == [(1, 5, 0), (1, 3, 1), (2, 5, 2)]


def test_recbole_tokens_need_not_be_numbers(tmp_path):
    df = read_interactions(write(tmp_path / "a.inter", "user_id:token\titem_id:token\nann\tx\nbob\ty\n"))
    assert df["user"].tolist() == ["ann", "bob"] and df["timestamp"].tolist() == [0, 1]


def test_read_titles_every_format(tmp_path):
    u_item = write(tmp_path / "u.item", "1|Toy Story (1995)|01-Jan-1995||http://x|0\n2|Café (1990) |x||y|1\n",
                   encoding="latin-1")
    assert read_titles(u_item) == {1: "Toy Story (1995)", 2: "Café (1990)"}
    movies = write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation\n3::Heat (1995)::Action\n", "latin-1")
    assert read_titles(movies) == {1: "Toy Story (1995)", 3: "Heat (1995)"}
    csv = write(tmp_path / "movies.csv", 'movieId,title,genres\n1,"American President, The (1995)",Drama\n')
    assert read_titles(csv) == {1: "American President, The (1995)"}
    item = write(tmp_path / "m.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\n1\tToy Story\t1995\n")
    assert read_titles(item) == {1: "Toy Story (1995)"}


def test_cache_layout_and_title_files(tmp_path, offline, unchecked):
    folder = tmp_path / "ml-1m"
    write(folder / "sequences_by_time.txt", "1 2\n1 1\n")
    write(folder / "movies.dat", "1::Toy Story (1995)::Animation\n2::Jumanji (1995)::Adventure\n", "latin-1")
    df = load_interactions("ml-1m", tmp_path)
    assert df.attrs["name"] == "ml-1m" and df.attrs["titles"][2] == "Jumanji (1995)"
    assert as_rows(df) == [(1, 2, 0), (1, 1, 1)]
    write(folder / "ratings.dat", "1::1::5::10\n")  # the original GroupLens file wins over the derived one
    assert as_rows(load_interactions("ml-1m", tmp_path)) == [(1, 1, 10)]
    assert load_interactions(folder).attrs["name"] == "ml-1m"  # a folder works too
    assert load_interactions(folder / "sequences_by_time.txt").attrs["titles"][1] == "Toy Story (1995)"
    other = write(tmp_path / "x" / "mine.txt", "1 2\n")
    assert load_interactions(other).attrs["name"] == "mine"


# ------------------------------------------------------------------------------------------------ preprocessing
def test_k_core_is_a_fixed_point():
    """min 2/2. Round 1: every item has >= 2, user 4 has 1 -> out; round 2: item 30 now has 1 -> out, so user 3
    (20 only) -> out; round 3: item 20 still has 2. A single pass would have kept users 3 and 4."""
    df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 4], "item": [10, 20, 10, 20, 20, 30, 30], "timestamp": 0})
    users, items = pd.factorize(df["user"])[0], pd.factorize(df["item"])[0]
    assert k_core_mask(users, items, 2, 2).tolist() == [True] * 4 + [False] * 3
    result = preprocess(df, 2, 2)
    assert result.user_ids == [1, 2] and result.item_ids == [10, 20] and result.sequences == [[1, 2], [1, 2]]
    assert preprocess(df, 1, 1).n_actions == 7


def test_stable_sort_by_time_keeps_file_order_for_ties():
    df = pd.DataFrame({"user": [9, 1, 9, 1, 9, 9], "item": [1, 5, 2, 6, 3, 4], "timestamp": [5, 0, 3, 0, 5, 3]})
    result = preprocess(df, 1, 1)
    assert result.user_ids == [1, 9]
    assert result.sequences == [[5, 6], [2, 4, 1, 3]]  # user 9: t=3 (items 2, 4 in file order), then t=5 (1, 3)


def test_reindexing_by_sorted_raw_id_with_titles():
    df = pd.DataFrame({"user": [3, 3, 3, 1], "item": [100, 7, 42, 7], "timestamp": [1, 2, 3, 1]})
    df.attrs.update(titles={7: "Seven", 100: "Hundred", 5: "not rated"}, name="toy")
    result = preprocess(df, 1, 1)
    assert result.item_ids == [7, 42, 100] and result.n_items == 3 and result.name == "toy"
    assert result.sequences == [[1], [3, 1, 2]]
    assert result.titles == {1: "Seven", 3: "Hundred"}
    assert (result.pad_id, result.mask_id) == (0, 4)
    assert [result.title(i) for i in range(5)] == ["[pad]", "Seven", "item 42", "Hundred", "[mask]"]
    assert result.stats() == {"users": 2, "items": 3, "actions": 4, "avg_length": 2.0, "density": 4 / 6}


def test_nothing_left_after_filtering():
    with pytest.raises(ValueError, match="no interactions are left.*lower them"):
        preprocess(pd.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": 0}))


# ------------------------------------------------------------------------------------------------ leave-one-out
def test_split_never_leaks_targets_into_training():
    seqs = [[1, 2, 3, 4, 5], [5, 4], [3], [2, 2, 2], *synthetic_sequences(50, 20, 3, 15, seed=1).sequences]
    sd = SequenceData(sequences=seqs, n_items=20, user_ids=list(range(len(seqs))), item_ids=list(range(1, 21)))
    split = sd.split()
    assert split.eval_users == [0, 3] + list(range(4, len(seqs)))  # users with >= 3 items
    assert split.train[:4] == [[1, 2, 3], [5, 4], [3], [2]]  # short users: whole sequence, never evaluated
    assert (split.valid_targets[0], split.test_targets[0], split.test_inputs[0]) == (4, 5, [1, 2, 3, 4])
    for k, u in enumerate(split.eval_users):
        seq, n = seqs[u], len(seqs[u])
        # position-wise: training input and validation input are positions 0..n-3; the targets sit at n-2 and n-1
        assert split.train[u] == split.valid_inputs[k] == seq[: n - 2]
        assert split.valid_targets[k] == seq[n - 2] and split.test_targets[k] == seq[n - 1]
        assert split.test_inputs[k] == seq[: n - 1]
    counts = sd.item_counts()
    assert counts.dtype == torch.long and counts.shape == (21,) and counts[0] == 0
    assert counts.sum() == sum(len(t) for t in split.train)
    # item 5: user 1's whole sequence [5, 4] counts; user 0's 5 is its test target and does not
    assert counts[5] == 1 + sum(s.count(5) for s in split.train[4:])


def test_the_papers_split_trains_on_the_validation_item_but_never_the_test_item():
    seqs = [[1, 2, 3, 4, 5], [5, 4], [3], [2, 2, 2], *synthetic_sequences(50, 20, 3, 15, seed=1).sequences]
    sd = SequenceData(sequences=seqs, n_items=20, user_ids=list(range(len(seqs))), item_ids=list(range(1, 21)))
    held_out, paper = sd.split(), sd.split(include_valid_in_train=True)
    assert paper.train[:4] == [[1, 2, 3, 4], [5, 4], [3], [2, 2]]
    for k, u in enumerate(paper.eval_users):
        assert paper.train[u] == paper.test_inputs[k] == seqs[u][:-1]  # everything before the test item
        assert paper.test_targets[k] == seqs[u][-1] == held_out.test_targets[k]
    assert (paper.valid_inputs, paper.test_inputs) == (held_out.valid_inputs, held_out.test_inputs)
    counts = sd.item_counts(include_valid_in_train=True)
    assert counts.sum() == sum(len(t) for t in paper.train) == sd.item_counts().sum() + len(paper.eval_users)


# ------------------------------------------------------------------------------------------------ bad inputs
def test_unknown_dataset_name_lists_known_ones(tmp_path):
    for call in (lambda: load_interactions("ml-2m", tmp_path), lambda: download("ml-2m", tmp_path)):
        with pytest.raises(ValueError, match=r"unknown dataset 'ml-2m'; known datasets: ml-100k, ml-1m, ml-20m, "
                                             r"beauty, steam"):
            call()
    with pytest.raises(FileNotFoundError, match="nope.txt does not exist"):
        load_interactions(tmp_path / "nope.txt")


def test_datasets_without_download_say_where_to_put_the_file(tmp_path, offline):
    with pytest.raises(FileNotFoundError, match=r"beauty is not in .* has no official download.\nPut the BERT4Rec "
                                                r".*beauty.txt"):
        load_dataset("beauty", tmp_path)
    write(tmp_path / "steam" / "steam.txt", "1 1\n" * 5)
    assert load_dataset("steam", tmp_path, 1, 1).sequences == [[1] * 5]


def test_no_network_says_what_to_download_and_where(tmp_path, offline):
    with pytest.raises(FileNotFoundError) as error:
        download("ml-1m", tmp_path)
    message = str(error.value)
    assert "could not download https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message
    assert str(tmp_path / "ml-1m.zip") in message and str(tmp_path / "ml-1m" / "ratings.dat") in message
    with pytest.raises(FileNotFoundError, match=r"(?s)ml-100k.zip.*recbole==1.2.1 from PyPI, failed too.*"
                                                r"put it at .*ml-100k.zip"):
        load_interactions("ml-100k", tmp_path)


def test_a_missing_dataset_is_a_short_message_without_traceback_in_jupyter(tmp_path, offline):
    """The notebooks' data cell: what is missing, where to put it, how to switch to ml-100k; no stack trace."""
    with pytest.raises(datasets.DatasetUnavailable) as error:
        load_dataset("ml-1m", tmp_path)
    lines = error.value._render_traceback_()  # what IPython prints instead of a traceback
    assert lines[0].startswith("DatasetUnavailable: ml-1m is not in ") and len(lines) == 3
    assert "put it at" in lines[1] and "MINIBERT4REC_DATASET=ml-100k" in lines[2]
    assert "Traceback" not in "\n".join(lines) and all(len(line) < 400 for line in lines)


def fake_zip(name: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(f"{name}/{path}", text)
    return buffer.getvalue()


def test_grouplens_download_checksum_and_atomic_extract(tmp_path, monkeypatch):
    good = fake_zip("ml-100k", {"u.data": "1\t1\t5\t1\n1\t2\t5\t2\n", "u.item": "1|A (1990)|\n2|B (1991)|\n"})
    calls = []

    def fetch(url, sha256, dest, progress):
        calls.append(url)
        dest.write_bytes(payload)

    monkeypatch.setattr(datasets, "_fetch", fetch)
    monkeypatch.setattr(datasets, "_pip_download", lambda *a: (_ for _ in ()).throw(ConnectionError("no PyPI")))
    payload = b"<html>not a zip</html>"
    with pytest.raises(ValueError, match=r"checksum mismatch for .*ml-100k.zip.*second source.*failed too"):
        download("ml-100k", tmp_path)  # the second source is tried after a damaged download
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the bad download is gone, no temporary files left
    monkeypatch.setattr(datasets, "_pip_download", lambda *a: pytest.fail("GroupLens worked: no second source"))

    spec = dataclasses.replace(KNOWN_DATASETS["ml-100k"], sha256=hashlib.sha256(good).hexdigest())
    monkeypatch.setitem(datasets.KNOWN_DATASETS, "ml-100k", spec)
    payload = good
    assert download("ml-100k", tmp_path, progress=False) == tmp_path / "ml-100k"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["SHA256SUMS", "ml-100k", "ml-100k.zip", "u.data", "u.item"]
    assert oct((tmp_path / "ml-100k" / "SHA256SUMS").stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    result = load_dataset("ml-100k", tmp_path, 1, 1)  # cached now: no second download
    assert (result.sequences, result.title(2), len(calls)) == ([[1, 2]], "B (1991)", 2)

    (tmp_path / "ml-100k" / "u.data").unlink()  # a damaged zip already there is moved aside and downloaded again
    (tmp_path / "ml-100k.zip").write_bytes(good[:-10])
    with pytest.warns(UserWarning, match="is damaged .* moved it to .*ml-100k.zip.corrupt"):
        download("ml-100k", tmp_path, progress=False)
    assert (tmp_path / "ml-100k.zip").read_bytes() == good and (tmp_path / "ml-100k.zip.corrupt").exists()
    assert len(calls) == 3 and load_dataset("ml-100k", tmp_path, 1, 1).sequences == [[1, 2]]


def test_recbole_wheel_is_the_second_source_for_ml_100k(tmp_path, monkeypatch):
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t20\n1\t1\t4\t10\n"
    item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n1\tToy Story\t1995\tAnimation\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for member, text in (("ml-100k.inter", inter), ("ml-100k.item", item), ("ml-100k.kg", "no")):
            wheel.writestr(f"recbole/dataset_example/ml-100k/{member}", text)

    def pip_download(requirement, dest_dir, progress):
        assert requirement == "recbole==1.2.1"
        (dest_dir / "recbole-1.2.1-py3-none-any.whl").write_bytes(buffer.getvalue())
        return dest_dir / "recbole-1.2.1-py3-none-any.whl"

    monkeypatch.setattr(datasets, "_fetch", lambda *a: (_ for _ in ()).throw(OSError("no route to host")))
    monkeypatch.setattr(datasets, "_pip_download", pip_download)
    with pytest.raises(ValueError, match=r"checksum mismatch .*recbole==1.2.1 wheel"):
        download("ml-100k", tmp_path)
    monkeypatch.setattr(datasets, "RECBOLE_SHA256", hashlib.sha256(buffer.getvalue()).hexdigest())
    download("ml-100k", tmp_path)
    assert sorted(p.name for p in (tmp_path / "ml-100k").iterdir()) == ["SHA256SUMS", "ml-100k.inter", "ml-100k.item"]
    modes = {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "ml-100k").iterdir()}
    assert modes == {oct(0o666 & ~current_umask())}  # not 0600: readable like any download
    result = load_dataset("ml-100k", tmp_path, 1, 1)
    assert result.sequences == [[1, 2]] and result.title(1) == "Toy Story (1995)" and result.name == "ml-100k"
    with pytest.raises(ValueError, match="'recbole' exists for ml-100k only"):
        download("ml-1m", tmp_path, source="recbole")


@pytest.mark.parametrize("name, text, match", [
    ("u.data", "1\t2\t3\t4\n5\t6\t7\t8\n5\t6\t7", r"u.data, line 3: expected 4 fields .* found 3 .*truncated"),
    ("ratings.dat", "1::2::3::4\n1::x::3::4\n", r"ratings.dat, line 2: item 'x' is not an integer"),
    ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,4\n1,2,3.5,4,9\n", r"ratings.csv, line 3: expected 4"),
    ("a.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\n", r"a.inter, line 3: expected 3"),
    ("a.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\tsoon\n", r"line 2: timestamp 'soon' is not a n"),
    ("seq.txt", "1 2\n1 2\n1 2 3\n", r"seq.txt, line 3: expected 2 fields"),
    ("seq.txt", "\n\n", r"seq.txt is empty"),
    ("odd.txt", "1 2 3\n", r"odd.txt, line 1: cannot tell the format"),
    ("r.csv", "a,b\n1,2\n", r"r.csv, line 1: the header \['a', 'b'\] needs a user and an item column"),
])
def test_truncated_or_malformed_files_name_file_and_line(tmp_path, name, text, match):
    with pytest.raises(ValueError, match=match):
        read_interactions(write(tmp_path / name, text))


def test_malformed_titles_name_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=r"movies.dat, line 2: expected item id::title"):
        read_titles(write(tmp_path / "movies.dat", "1::A::x\n2\n"))


def test_install_shared_copy(tmp_path, unchecked):
    src = tmp_path / "shared"
    write(src / "sequences_by_time.txt", "1 1\n")
    write(src / "movies.dat", "1::A (1990)::x\n")
    write(src / "users.dat", "not needed\n")
    folder = install_shared_copy("ml-1m", src, tmp_path / "data")
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "movies.dat", "sequences_by_time.txt"]
    assert load_dataset("ml-1m", tmp_path / "data", 1, 1).title(1) == "A (1990)"
    with pytest.raises(FileNotFoundError, match="holds none of the beauty interaction files"):
        install_shared_copy("beauty", src, tmp_path / "data")


# ------------------------------------------------------------------------------------------------ synthetic data
def test_synthetic_sequences_are_seeded_and_have_structure():
    a, b = synthetic_sequences(seed=3), synthetic_sequences(seed=3)
    assert a.sequences == b.sequences and a.sequences != synthetic_sequences(seed=4).sequences
    assert a.n_users == 200 and a.n_items == 50 and a.item_ids == list(range(1, 51))
    assert all(10 <= len(s) <= 30 and all(1 <= i <= 50 for i in s) for s in a.sequences)
    # the planted rule: each item's most frequent successor follows it about p_follow = 80% of the time
    pairs = pd.DataFrame([(x, y) for s in a.sequences for x, y in zip(s, s[1:])], columns=["x", "y"])
    top = pairs.groupby("x")["y"].agg(lambda y: y.value_counts().iloc[0]).sum()
    assert 0.75 < top / len(pairs) < 0.9
    big = synthetic_sequences(n_users=20_000, n_items=1000, min_len=20, max_len=50, seed=0)  # speed: benchmarks/
    assert big.n_users == 20_000 and {len(s) for s in big.sequences} == set(range(20, 51))
    with pytest.raises(ValueError, match="min_len <= max_len"):
        synthetic_sequences(min_len=5, max_len=4)


# ------------------------------------------------------------------------------------------------ real files
@pytest.mark.skipif(not SHARED.is_dir(), reason="no local copy of the real datasets in ../shared/data")
def test_real_datasets_match_the_papers_statistics(tmp_path, offline):
    expected = {"ml-100k": (943, 1682, 100_000, 943, 1349, 99_287), "ml-1m": (6040, 3706, 1_000_209, 6040, 3416, 999_611)}
    for name, (raw_users, raw_items, raw_actions, users, items, actions) in expected.items():
        install_shared_copy(name, SHARED / name, tmp_path)
        raw = load_interactions(name, tmp_path)
        assert (raw["user"].nunique(), raw["item"].nunique(), len(raw)) == (raw_users, raw_items, raw_actions)
        stats = preprocess(raw).stats()
        assert (stats["users"], stats["items"], stats["actions"]) == (users, items, actions)
        assert preprocess(raw).title(1) == "Toy Story (1995)"
