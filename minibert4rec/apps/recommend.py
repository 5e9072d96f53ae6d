"""Top-k recommendations for one history: what a trained BERT4Rec is for.

The history is appended with [mask] and the model fills in the blank: the k highest-scoring items at the masked
position are the recommendations. Items the user has already seen can be removed first. :func:`recommend_raw`
does the same for the ids of the dataset's file (what ``python -m minibert4rec recommend`` takes);
:func:`recommend_many` scores many histories in one batched forward pass (``recommend --users-file``).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch

from ..data import SequenceData
from ..evaluate import model_inputs
from ..model import BERT4Rec


def recommend(model: BERT4Rec, history: list[int], k: int = 10, exclude_seen: bool = True) -> list[tuple[int, float]]:
    """The ``k`` best next items for ``history`` (item ids 1..N, oldest first) as ``[(item_id, score), ...]``."""
    if isinstance(history, (str, bytes)) or not isinstance(history, Iterable):
        raise ValueError(f"history={history!r:.60} must be a list of item ids (integers 1..{model.n_items}), oldest first.")
    history = list(history.tolist() if hasattr(history, "tolist") else history)  # a tensor or numpy array too
    if len(history) == 0:
        raise ValueError("the history is empty: give at least one item the user interacted with.")
    not_ints = [item for item in history if isinstance(item, bool) or not isinstance(item, numbers.Integral)]
    if not_ints:
        raise ValueError(f"history items {not_ints[:5]!r} are not integer item ids; give ids 1..{model.n_items} "
                         "(map raw dataset ids with SequenceData.item_ids first).")
    history = [int(item) for item in history]  # numpy.int64(3) is item 3, not an unknown item
    unknown = [item for item in history if not 1 <= item <= model.n_items]
    if unknown:
        raise ValueError(f"item ids {unknown[:5]} are unknown to the model, which knows ids 1..{model.n_items}; "
                         "map raw dataset ids with SequenceData.item_ids first.")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k={k!r} must be an integer: the number of items to recommend, e.g. k=10.")
    k = int(k)
    available = model.n_items - (len(set(history)) if exclude_seen else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} must be between 1 and {available} (the items left to recommend).")
    device = next(model.parameters()).device
    inputs = model_inputs(model, [history], model.config.max_seq_length, model.mask_id).to(device)
    was_training = model.training
    model.eval()
    scores = model.predict(inputs)[0].float().cpu()  # (N+1,), column 0 is -inf
    model.train(was_training)
    if exclude_seen:
        scores[torch.tensor(sorted(set(history)))] = -torch.inf
    top = torch.topk(scores, k)
    return [(int(i), float(s)) for s, i in zip(top.values, top.indices)]


def raw_to_item_ids(data: SequenceData, raw_items: Iterable[str | int]) -> list[int]:
    """Raw dataset ids (e.g. MovieLens movie ids, as text or numbers) -> the package's item ids 1..N."""
    new_id = {str(raw): i + 1 for i, raw in enumerate(data.item_ids)}
    raw_items = [str(s).strip() for s in raw_items if str(s).strip()]
    unknown = [s for s in raw_items if s not in new_id]
    if unknown:
        raise ValueError(f"item {unknown[0]!r} is not in {data.name} after preprocessing; give raw dataset item ids "
                         f"(e.g. MovieLens movie ids) separated by commas.")
    return [new_id[s] for s in raw_items]


def recommend_raw(model: BERT4Rec, data: SequenceData, raw_items: Iterable[str | int], k: int = 10,
                  exclude_seen: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`recommend` for raw dataset ids: (the history with titles, the top ``k`` with raw ids, titles, scores)."""
    raw_items = [str(s).strip() for s in raw_items if str(s).strip()]
    history = raw_to_item_ids(data, raw_items)
    seen = pd.DataFrame({"item": raw_items, "title": [data.title(i) for i in history]},
                        index=pd.RangeIndex(1, len(history) + 1, name="#"))
    top = pd.DataFrame([{"rank": r + 1, "item": data.item_ids[i - 1], "title": data.title(i), "score": round(s, 3)}
                        for r, (i, s) in enumerate(recommend(model, history, k=k, exclude_seen=exclude_seen))])
    return seen, top


def recommend_many(model: BERT4Rec, histories: list[list[int]], k: int = 10, exclude_seen: bool = True,
                   batch_size: int = 256) -> list[list[tuple[int, float]]]:
    """:func:`recommend` for many histories at once: batched forward passes (``batch_size`` histories each)."""
    if not histories:
        raise ValueError("no history to score: give at least one user or history.")
    for history in histories:  # the same checks as one history, before any forward pass
        if not history:
            raise ValueError("a history is empty: give at least one item per user.")
        unknown = [item for item in history if not 1 <= int(item) <= model.n_items]
        if unknown:
            raise ValueError(f"item ids {unknown[:5]} are unknown to the model, which knows ids 1..{model.n_items}.")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k={k!r} must be an integer: the number of items to recommend, e.g. k=10.")
    longest = max(len(set(h)) for h in histories) if exclude_seen else 0
    if not 1 <= k <= model.n_items - longest:
        raise ValueError(f"k={k} must be between 1 and {model.n_items - longest} (the items left to recommend "
                         "for every history).")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results = []
    try:
        for start in range(0, len(histories), batch_size):
            chunk = [[int(i) for i in h] for h in histories[start:start + batch_size]]
            inputs = model_inputs(model, chunk, model.config.max_seq_length, model.mask_id).to(device)
            with torch.no_grad():
                scores = model.predict(inputs).float().cpu()  # (batch, N+1), column 0 is -inf
            for row, history in zip(scores, chunk):
                if exclude_seen:
                    row[torch.tensor(sorted(set(history)))] = -torch.inf
                top = torch.topk(row, k)
                results.append([(int(i), float(v)) for v, i in zip(top.values, top.indices)])
    finally:
        model.train(was_training)
    return results


def read_users_file(path: str | Path, data: SequenceData) -> list[tuple[str, list[int]]]:
    """``[(label, history)]`` from a file of users: each line either a raw user id of ``data`` (its whole
    history is used) or ``history: item,item,...`` (raw item ids, oldest first). Blank lines and ``#`` comments
    are skipped; errors name the file and the line."""
    from ..support.files import regular_file

    path = regular_file(path, "users file")
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"users file {path} is not text (not UTF-8).") from None
    by_user = {str(raw): u for u, raw in enumerate(data.user_ids)}
    rows = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            if line.lower().startswith("history:"):
                items = line.split(":", 1)[1].split(",")
                rows.append((f"line {number}", raw_to_item_ids(data, items)))
            elif line in by_user:
                rows.append((f"user {line}", list(data.sequences[by_user[line]])))
            else:
                raise ValueError(f"user {line!r:.60} is not in {data.name} after preprocessing; give a raw user id, "
                                 "or 'history: item,item,...'")
        except ValueError as error:
            raise ValueError(f"users file {path}, line {number}: {str(error).rstrip('.')}.") from None
    if not rows:
        raise ValueError(f"users file {path} holds no user (one raw user id, or 'history: item,item,...', per line).")
    return rows


def recommend_users(model: BERT4Rec, data: SequenceData, users: list[tuple[str, list[int]]], k: int = 10,
                    exclude_seen: bool = True) -> pd.DataFrame:
    """One table for :func:`read_users_file`'s users: who, rank, raw item id, title, score."""
    tops = recommend_many(model, [h for _, h in users], k=k, exclude_seen=exclude_seen)
    return pd.DataFrame([{"who": who, "rank": r + 1, "item": data.item_ids[i - 1], "title": data.title(i),
                          "score": round(s, 3)}
                         for (who, _), top in zip(users, tops) for r, (i, s) in enumerate(top)])
