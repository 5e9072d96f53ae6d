"""The evaluation protocol: which users, which candidates, which numbers (notebook 06).

``metrics.py`` turns ranks into HR@k / NDCG@k / MRR. This module decides *what is ranked*, the same way for every
model, the popularity baseline included:

1. **Held-out items** (:func:`held_out`): leave-one-out, each evaluated user's validation item ``seq[-2]`` given
   ``seq[:-2]``, or test item ``seq[-1]`` given ``seq[:-1]``.
2. **Model inputs** (:func:`model_inputs`): ``history + [mask]`` for BERT4Rec, the bare history for the causal model.
3. **Candidates**, one of :data:`PROTOCOLS`: all items (seen kept), all items the user has not seen, or the target
   plus 100 negatives drawn by popularity (:func:`draw_negatives`; the counts: :func:`negative_counts`).
4. **Tables** (:func:`metrics_table`): one labelled row per (split, protocol).

:func:`evaluate_split` fixes every choice from a config (seed, negatives, counts, what is never a negative), and
the trainer, ``python -m minibert4rec evaluate`` and :func:`evaluate_popularity` all go through it: a popularity
row and a model row evaluated with the same config rank the same targets against the same negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from . import distributed
from .data import SequenceData
from .fast.sampler import sample_negatives
from .masking import inference_inputs, left_pad, trim_left_padding
from .metrics import ranking_metrics, sampled_ranks, target_ranks
from .model import PopularityModel
from .support.config import BERT4RecConfig

#: protocol key -> label. Full ranking comes in two variants; the field's is "seen removed" (aprec's
#: FilterSeenRecommender, Klenitskiy & Vasilev's ``filter_seen``, gSASRec's ``filter_rated``).
PROTOCOLS = {
    "full": "full ranking, seen items kept",
    "full_filtered": "full ranking, seen items removed (the field's)",
    "sampled": "100 popularity-sampled negatives (the paper's)",
}
METRIC_ORDER = ["HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR"]
SPLITS = ("valid", "test")


# --------------------------------------------------------------------------------------------- what is ranked
def model_inputs(model: torch.nn.Module, histories: list[list[int]], max_len: int, mask_id: int) -> torch.Tensor:
    """The model's view of each history: ``history + [mask]`` (bidirectional) or the bare history (causal)."""
    if getattr(getattr(model, "config", None), "causal", False):
        return left_pad(histories, max_len)
    return inference_inputs(histories, max_len, mask_id)


def held_out(data: SequenceData, split: str) -> tuple[list[list[int]], list[int], list[list[int]]]:
    """``(histories, targets, interacted)`` of every evaluated user for ``split`` ("valid" or "test").

    ``interacted`` is each user's *whole* sequence: never a sampled negative, so that a validation user's test
    item is not drawn as a negative either. (The held-out lists do not depend on ``include_valid_in_train``.)"""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not a held-out split; use 'valid' or 'test'.")
    loo = data.split()
    interacted = [data.sequences[u] for u in loo.eval_users]
    return getattr(loo, f"{split}_inputs"), getattr(loo, f"{split}_targets"), interacted


def negative_counts(data: SequenceData, config: BERT4RecConfig) -> torch.Tensor:
    """Item counts (N+1,) the sampled negatives are drawn in proportion to (``config.popularity_counts``):

    * ``"whole"`` (the default, the authors' code): the users' whole sequences, held-out items included;
    * ``"train"``: the part the model trains on (``seq[:-2]``, or ``seq[:-1]`` with ``include_valid_in_train``).
    """
    if config.popularity_counts == "whole":
        flat = torch.tensor([i for s in data.sequences for i in s], dtype=torch.long)
        return torch.bincount(flat, minlength=data.n_items + 1)
    return data.item_counts(config.include_valid_in_train)


@dataclass(frozen=True)
class PreparedSplit:
    """One held-out split with everything the config fixes, built once (:func:`prepare_split`) and reused at every
    evaluation of a run: the users' histories and targets, what is never a negative, the negatives' counts."""

    name: str
    histories: list[list[int]]
    targets: list[int]
    interacted: list[list[int]]
    negative_counts: torch.Tensor  # (N+1,)


def prepare_split(data: SequenceData, config: BERT4RecConfig, split: str) -> PreparedSplit:
    """:func:`held_out` and :func:`negative_counts` of ``split`` under ``config``, in one reusable object."""
    return PreparedSplit(split, *held_out(data, split), negative_counts(data, config))


def draw_negatives(item_counts: torch.Tensor, targets: list[int] | torch.Tensor, interacted: list[list[int]],
                   n_negatives: int, seed: int, batch_size: int = 1024) -> torch.Tensor:
    """``n_negatives`` popularity-sampled negatives per user: (U n_negatives).

    Drawn in user order, ``batch_size`` users at a time, from one generator seeded with ``seed``: the same
    candidates however (and by whatever model) the users are scored."""
    targets = torch.as_tensor(targets, dtype=torch.long)
    if len(targets) == 0:
        return torch.empty(0, n_negatives, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([sample_negatives(item_counts, targets[start : start + batch_size], n_negatives,
                                       exclude=interacted[start : start + batch_size], generator=generator)
                      for start in range(0, len(targets), batch_size)])


# --------------------------------------------------------------------------------------------- ranking
@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    histories: list[list[int]],
    targets: list[int],
    item_counts: torch.Tensor,
    *,
    max_len: int,
    mask_id: int,
    protocols: tuple[str, ...] = ("full", "full_filtered", "sampled"),
    n_negatives: int = 100,
    interacted: list[list[int]] | None = None,
    batch_size: int = 1024,
    seed: int = 0,
    ks: tuple[int, ...] = (1, 5, 10),
    device: torch.device | str | None = None,
    shard: tuple[int, int] = (0, 1),
) -> dict[str, dict[str, float]]:
    """Rank each user's held-out ``target`` given ``history``; return ``{protocol: {metric: value}}``.

    * ``"full"`` ranks the target among all N items, the items of the history included ("seen items kept");
    * ``"full_filtered"`` ranks it among the items *not* in the history ("seen items removed"): what every
      recent BERT4Rec comparison reports (Petrov & Macdonald, Klenitskiy & Vasilev, gSASRec, RecTools), since
      a recommender would never show a user a movie they already rated. It is much higher than the seen-kept
      number for the same model: only ever compare a number with one computed the same way;
    * ``"sampled"`` ranks it among ``n_negatives`` items drawn by popularity (``item_counts``) from those the user
      never interacted with (the paper's protocol). ``interacted`` lists, per user, every item to keep out of the
      negatives (default: the history). The negatives come from :func:`draw_negatives` seeded with ``seed``, so
      every evaluation of every model sees the same candidates.

    ``shard=(rank, world_size)`` (data-parallel runs, see ``distributed.py``): this process scores every
    world_size-th batch of users and the ranks are summed over processes: the metrics are those of one process.
    :func:`evaluate_split` fills every argument from a config.
    """
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}.")
    if len(histories) != len(targets):
        raise ValueError(f"got {len(histories)} histories but {len(targets)} targets; give one target per history.")
    interacted = histories if interacted is None else interacted
    if len(interacted) != len(histories):
        raise ValueError(f"got {len(interacted)} interacted lists for {len(histories)} histories; give one per user.")
    device = torch.device(device) if device is not None else next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    all_targets = torch.tensor(targets, dtype=torch.long)  # (U,)
    negatives = (draw_negatives(item_counts, all_targets, interacted, n_negatives, seed, batch_size)
                 if "sampled" in protocols else None)  # (U n_negatives)
    # Score users in order of history length and trim each batch's all-padding columns: short histories then
    # cost their own length, not max_len (exact: BERT4Rec.positions ignores all-padding columns).
    lengths = torch.tensor([min(len(h), max_len) for h in histories], dtype=torch.long)
    order = torch.argsort(lengths, stable=True)
    ranks = {p: torch.zeros(len(histories), dtype=torch.long) for p in protocols}  # (U,) rank of each target
    for idx in order.split(batch_size)[shard[0] :: shard[1]]:  # [distributed] this rank's batches (all of them: 0::1)
        batch_hist = [histories[i] for i in idx.tolist()]
        batch_targets = all_targets[idx]
        inputs = trim_left_padding(model_inputs(model, batch_hist, max_len, mask_id)).to(device)
        scores = model.predict(inputs).float().cpu()  # (b N+1)
        if "full" in protocols:
            ranks["full"][idx] = target_ranks(scores, batch_targets)
        if "full_filtered" in protocols:
            ranks["full_filtered"][idx] = target_ranks(scores, batch_targets, exclude=batch_hist)
        if "sampled" in protocols:
            ranks["sampled"][idx] = sampled_ranks(scores, batch_targets, negatives[idx])
    model.train(was_training)
    if shard[1] > 1:  # [distributed] each rank filled its own users' ranks and left 0 elsewhere: sum = everyone's
        ranks = {p: distributed.sum_over_ranks(r, device) for p, r in ranks.items()}
    return {p: ranking_metrics(r, ks=ks) for p, r in ranks.items()}


def evaluate_split(model: torch.nn.Module, data: SequenceData, config: BERT4RecConfig,
                   split: str | PreparedSplit = "test", *,
                   users: list[int] | None = None, batch_size: int = 1024, device: torch.device | str | None = None,
                   shard: tuple[int, int] = (0, 1)) -> dict[str, dict[str, float]]:
    """:func:`evaluate` on ``split`` with every protocol choice taken from ``config``: ``seed``,
    ``eval_negatives``, ``popularity_counts`` (:func:`negative_counts`), ``max_seq_length``; the users' whole
    sequences are never negatives. ``users`` (indices into the split's users, see :func:`curve_subset`) evaluates
    only those. The trainer, the CLI and :func:`evaluate_popularity` all call this: same config, same candidates.
    ``split`` may be a :func:`prepare_split` of the same data and config (the trainer's, built once per run)."""
    prepared = split if isinstance(split, PreparedSplit) else prepare_split(data, config, split)
    histories, targets, interacted = prepared.histories, prepared.targets, prepared.interacted
    if users is not None:
        histories, targets = [histories[u] for u in users], [targets[u] for u in users]
        interacted = [interacted[u] for u in users]
    return evaluate(model, histories, targets, prepared.negative_counts, max_len=config.max_seq_length,
                    mask_id=data.mask_id, n_negatives=config.eval_negatives, interacted=interacted,
                    batch_size=batch_size, seed=config.seed, device=device, shard=shard)


def curve_subset(n_users: int, eval_users: int, seed: int) -> list[int]:
    """Users whose metrics draw the learning curve: all of them (``eval_users=0``), or a fixed, seeded sample of
    ``eval_users`` -- the same users at every evaluation, so the curve moves only when the model does. The final
    valid/test numbers are always computed on every user."""
    if eval_users <= 0 or eval_users >= n_users:
        return list(range(n_users))
    generator = torch.Generator().manual_seed(seed + 7_919)
    return sorted(torch.randperm(n_users, generator=generator)[:eval_users].tolist())


# --------------------------------------------------------------------------------------------- the baseline
def evaluate_popularity(data: SequenceData, split_name: str = "test", seed: int | None = None,
                        n_negatives: int | None = None, include_valid_in_train: bool | None = None, *,
                        config: BERT4RecConfig | None = None) -> dict[str, dict[str, float]]:
    """Metrics of the popularity baseline on the validation or test split (the floor every model must beat).

    Through the models' own path (:func:`evaluate_split`): pass the model's ``config`` and the two rows are
    comparable like for like -- the same targets, the same negatives (``seed``, ``eval_negatives``,
    ``popularity_counts``, whole sequences excluded). Without one, the trainer's defaults
    (``BERT4RecConfig()``); ``seed``, ``n_negatives``, ``include_valid_in_train`` override single fields.
    The baseline scores each item by its count in the *training* part (what a model could have learnt from)."""
    config = config if config is not None else BERT4RecConfig(device="cpu")
    overrides = {"seed": seed, "eval_negatives": n_negatives, "include_valid_in_train": include_valid_in_train}
    config = config.replace(**{k: v for k, v in overrides.items() if v is not None})
    model = PopularityModel(data.item_counts(config.include_valid_in_train))
    return evaluate_split(model, data, config, split_name, device="cpu")


# --------------------------------------------------------------------------------------------- tables
def flatten_metrics(prefix: str, metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{"full": {"NDCG@10": x}}`` -> ``{"valid_full_NDCG@10": x}`` (one DataFrame column per number)."""
    return {f"{prefix}_{protocol}_{name}": value for protocol, values in metrics.items() for name, value in values.items()}


def metrics_table(results: dict[str, dict[str, dict[str, float]]], n_negatives: int = 100) -> pd.DataFrame:
    """``{"test": {"full": {...}, "sampled": {...}}}`` -> one row per (split, protocol), one column per metric.

    Rows are labelled in words (``test / full, seen removed``): a full-ranking number means little unless it says
    whether the user's already-seen items competed with the target, and a sampled one unless it says against how
    many negatives (``n_negatives``: the config's ``eval_negatives``; the paper's 100 by default)."""
    labels = {"full": "full, seen kept", "full_filtered": "full, seen removed",
              "sampled": f"sampled ({n_negatives} neg.)"}
    rows = {f"{split} / {labels.get(protocol, protocol)}": values
            for split, by_protocol in results.items() for protocol, values in by_protocol.items()}
    table = pd.DataFrame(rows).T
    return table[[m for m in METRIC_ORDER if m in table.columns]]


def print_metrics(results: dict[str, dict[str, dict[str, float]]], n_negatives: int = 100) -> None:
    """Print :func:`metrics_table` with 4 decimals."""
    print(metrics_table(results, n_negatives).to_string(float_format=lambda v: f"{v:.4f}"))
