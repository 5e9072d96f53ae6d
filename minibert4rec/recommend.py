"""Top-k recommendations for one history: what a trained BERT4Rec is for.

The history is appended with [mask] and the model fills in the blank: the k highest-scoring items at the masked
position are the recommendations. Items the user has already seen can be removed first.
"""

from __future__ import annotations

import torch

from .model import BERT4Rec


def recommend(model: BERT4Rec, history: list[int], k: int = 10, exclude_seen: bool = True) -> list[tuple[int, float]]:
    """The ``k`` best next items for ``history`` (item ids 1..N, oldest first) as ``[(item_id, score), ...]``."""
    if len(history) == 0:
        raise ValueError("the history is empty: give at least one item the user interacted with.")
    unknown = [item for item in history if not (isinstance(item, int) and 1 <= item <= model.n_items)]
    if unknown:
        raise ValueError(f"item ids {unknown[:5]} are unknown to the model, which knows ids 1..{model.n_items}; "
                         "map raw dataset ids with SequenceData.item_ids first.")
    available = model.n_items - (len(set(history)) if exclude_seen else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} must be between 1 and {available} (the items left to recommend).")
    from .train import model_inputs  # local import: train imports this package's other modules

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
