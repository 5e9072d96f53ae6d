"""Top-k recommendations for one history: what a trained BERT4Rec is for.

The history is appended with [mask] and the model fills in the blank: the k highest-scoring items at the masked
position are the recommendations. Items the user has already seen can be removed first. :func:`recommend_raw`
does the same for the ids of the dataset's file (what ``python -m minibert4rec recommend`` takes).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

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
