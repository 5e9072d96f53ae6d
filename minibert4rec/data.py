"""Datasets as item sequences: the paper's preprocessing and the leave-one-out split (notebook 01).

BERT4Rec (Sun et al., 2019, section 4.1) turns ratings into *implicit feedback*: every rating, whatever its stars,
means "this user interacted with this item". Each user's interactions, sorted by time, form one sequence:

    raw file -> load_interactions() -> DataFrame(user, item, timestamp)   raw ids, one row per interaction
             -> preprocess()        -> SequenceData                       k-core filter, one list of ids per user
             -> SequenceData.split()-> LeaveOneOut                        last item = test, second to last = valid

Item ids after preprocessing: 0 = padding, 1..N = the items in the order of their sorted raw ids, N+1 = [mask].
Users are ordered by their sorted raw ids too, so the result never depends on the order of lines in the file.

Where the files come from (downloads, checksums, file formats, the per-dataset presets) is plumbing and lives in
``support/datasets.py``. Notebook 01 uses three of its names through this module, the first step of the pipeline:
``KNOWN_DATASETS`` (what can be loaded), ``download`` (fetch and check once) and ``load_interactions`` (read a file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .support.datasets import KNOWN_DATASETS, download, load_interactions

__all__ = ["KNOWN_DATASETS", "download", "load_interactions", "k_core_mask", "preprocess", "load_dataset",
           "LeaveOneOut", "SequenceData", "synthetic_sequences"]


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
        train = self.split(include_valid_in_train).train
        flat = np.fromiter(chain.from_iterable(train), dtype=np.int64, count=sum(map(len, train)))  # no 20M-int list
        return torch.from_numpy(np.bincount(flat, minlength=self.n_items + 1))

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
