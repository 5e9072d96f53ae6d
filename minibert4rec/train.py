"""Training and evaluating BERT4Rec: the loop, the device, mixed precision, checkpoints that resume exactly.

One epoch = every sliding window of every user's *training* history (``seq[:-2]``) once, Cloze-masked anew
(``masking.ClozeDataset``). After every ``eval_every`` epochs the model ranks each user's validation item
(``seq[-2]``) given ``seq[:-2]``; the best validation NDCG@10 (full ranking, seen items removed) picks the model that is finally
tested on ``seq[-1]`` given ``seq[:-1]`` — the leave-one-out protocol of the paper.

What a senior engineer expects from a training loop, each in a few lines:

* AdamW (no weight decay on biases, LayerNorms and embeddings), linear warm-up then linear decay, gradient clipping;
* the device chosen automatically (cuda > mps > cpu), bf16 autocast on CUDA, optional ``torch.compile``;
* a tqdm bar with the loss and the throughput; the history as a pandas DataFrame;
* data-parallel training when launched by ``torchrun`` (``distributed.py``; the hooks are marked ``[distributed]``);
* a checkpoint after every epoch (model, optimizer, scheduler, RNG state, config, epoch), written atomically and
  readable with ``torch.load(weights_only=True)``; resuming from it gives bit-for-bit the run that never stopped.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from . import distributed
from .config import BERT4RecConfig, set_threads, training_memory_lower_bound
from .data import SequenceData
from .files import atomic_write, remove_stale_temporaries
from .masking import ClozeDataset, inference_inputs, left_pad, trim_left_padding
from .metrics import ranking_metrics, sample_negatives, sampled_ranks, target_ranks
from .model import BERT4Rec
from .progress import tqdm  # widgets in Jupyter with ipywidgets, else text; never a warning

CHECKPOINT_VERSION = 1


def choose_device(requested: str = "auto") -> torch.device:
    """``"auto"`` picks the fastest device present: CUDA GPU, then Apple's MPS, then the CPU."""
    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={requested!r} was asked for but torch sees no CUDA GPU; use --device cpu or auto.")
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def warmup_linear_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate multiplier: 0 -> 1 linearly over ``warmup_steps``, then 1 -> 0 linearly until ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def make_optimizer(model: torch.nn.Module, config: BERT4RecConfig) -> torch.optim.AdamW:
    """AdamW with BERT's habit: weight decay on weight matrices only (not biases, LayerNorms, embeddings)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        is_matrix = param.ndim == 2 and "embedding" not in name
        (decay if is_matrix else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


# --------------------------------------------------------------------------------------------- evaluation
def model_inputs(model: torch.nn.Module, histories: list[list[int]], max_len: int, mask_id: int) -> torch.Tensor:
    """The model's view of each history: ``history + [mask]`` (bidirectional) or the bare history (causal)."""
    if getattr(getattr(model, "config", None), "causal", False):
        return left_pad(histories, max_len)
    return inference_inputs(histories, max_len, mask_id)


#: protocol key -> label. Full ranking comes in two variants; the field's is "seen removed" (aprec's
#: FilterSeenRecommender, Klenitskiy & Vasilev's ``filter_seen``, gSASRec's ``filter_rated``).
PROTOCOLS = {
    "full": "full ranking, seen items kept",
    "full_filtered": "full ranking, seen items removed (the field's)",
    "sampled": "100 popularity-sampled negatives (the paper's)",
}


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
      a recommender would never show a user a movie they already rated. On ML-1m it is 1.5-1.7x the seen-kept
      number for the same model: only ever compare a number with one measured the same way;
    * ``"sampled"`` ranks it among ``n_negatives`` items drawn by popularity from those the user never
      interacted with (the paper's protocol). ``interacted`` lists, per user, every item to keep out of the
      negatives (default: the history; the trainer passes the user's *whole* sequence, so that a validation
      user's test item is never drawn as a negative either). The negatives come from a generator seeded with
      ``seed``, so every evaluation of every model sees the same candidates.

    ``shard=(rank, world_size)`` (data-parallel runs, see ``distributed.py``): this process scores every
    world_size-th batch of users and the ranks are summed over processes: the metrics are those of one process.
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
    negatives = None
    if "sampled" in protocols:  # drawn in user order, batch by batch: the same candidates however we score
        generator = torch.Generator().manual_seed(seed)
        negatives = torch.cat([
            sample_negatives(item_counts, all_targets[start : start + batch_size], n_negatives,
                             exclude=interacted[start : start + batch_size], generator=generator)
            for start in range(0, len(histories), batch_size)
        ]) if histories else torch.empty(0, n_negatives, dtype=torch.long)  # (U n_negatives)
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


def flatten_metrics(prefix: str, metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{"full": {"NDCG@10": x}}`` -> ``{"valid_full_NDCG@10": x}`` (one DataFrame column per number)."""
    return {f"{prefix}_{protocol}_{name}": value for protocol, values in metrics.items() for name, value in values.items()}


# -------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with torch.save through ``files.atomic_write`` (a temporary file, fsync, rename): a crash
    never leaves half a checkpoint, and a ``kill -9`` leaves at most a ``.checkpoint.pt.*.tmp`` that the next
    :func:`train` into the same folder deletes."""
    atomic_write(path, writer=lambda f: torch.save(state, f))


CHECKPOINT_KEYS = ("config", "n_items", "model")


def check_checkpoint_data(state: dict[str, Any], data: SequenceData, source: str | Path = "the checkpoint",
                          sequences: bool = True) -> None:
    """Refuse a checkpoint whose data set is not ``data``: its numbers would be silently wrong (another item
    behind each output column) or end in an IndexError. Compared: the number of items, the item mapping and --
    with ``sequences`` (evaluate, resume) -- the users' sequences, which the metrics are computed from.
    Checkpoints written before fingerprints existed can only be compared on their number of items."""
    if state["n_items"] != data.n_items:
        raise ValueError(f"{source} was trained on {state['n_items']:,} items but the data loaded now "
                         f"({data.name or 'unnamed'}) has {data.n_items:,}; use the dataset, --min-user-count and "
                         "--min-item-count it was trained with, or train a new model.")
    stored = (state.get("dataset") or {}).get("fingerprint")
    if not stored:
        return
    now = data.fingerprint()
    keys = {"item_ids_sha256": "the item mapping (the raw id behind each item id)"}
    if sequences:
        keys.update({"n_users": "the number of users", "sequences_sha256": "the users' sequences"})
    differ = [what for key, what in keys.items() if stored.get(key) != now[key]]
    if differ:
        raise ValueError(f"{source} was trained on other data than the data loaded now: {' and '.join(differ)} "
                         f"differ (trained on {stored.get('name') or 'unnamed'}: {stored.get('n_users')} users, "
                         f"{stored.get('n_items')} items; now {now['name'] or 'unnamed'}: {now['n_users']} users, "
                         f"{now['n_items']} items). Its numbers would be wrong; load the same file with the same "
                         "--min-user-count/--min-item-count, or train a new model.")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` — safely: ``weights_only=True`` runs no pickled code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train first (python -m minibert4rec train --out DIR).")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated file, not a torch file, or pickled objects
        raise ValueError(f"checkpoint {path} cannot be read ({error}); it is damaged or not a minibert4rec checkpoint.") from error
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} is not a minibert4rec checkpoint (version {CHECKPOINT_VERSION}).")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}; it is damaged or was not written by minibert4rec's train.")
    return state


def model_from_checkpoint(state: dict[str, Any], best: bool = True, device: str | torch.device = "cpu") -> BERT4Rec:
    """Rebuild the model of a checkpoint; ``best`` picks the weights with the best validation NDCG@10."""
    config = BERT4RecConfig.from_dict(state["config"])
    model = BERT4Rec(config, state["n_items"])
    model.load_state_dict(state["best_model"] if best and state.get("best_model") else state["model"])
    return model.to(device).eval()


# ------------------------------------------------------------------------------------------------ checks
def _machine_memory(device: torch.device) -> int | None:
    """Bytes of memory on ``device`` (RAM for the CPU, the GPU's memory for CUDA); None when unknown."""
    try:
        if device.type == "cuda":
            return torch.cuda.get_device_properties(device).total_memory
        if device.type == "cpu":
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError, RuntimeError):
        pass
    return None


def check_before_training(config: BERT4RecConfig, data: SequenceData, device: torch.device | str | None = None) -> None:
    """Everything that can be checked before an epoch is spent, each with a ``ValueError`` saying what to change:

    * some user has the 3 interactions leave-one-out needs (train, validation, test);
    * every evaluated user leaves ``eval_negatives`` items they never interacted with to sample negatives from
      (else the sampled protocol would fail after the first epoch);
    * the model fits in the device's memory (:func:`config.training_memory_lower_bound`, a lower bound: a refusal
      is never wrong).
    """
    evaluated = [s for s in data.sequences if len(s) >= 3]
    if not evaluated:
        raise ValueError(f"no user of {data.name or 'the data'} has the 3 interactions leave-one-out needs "
                         "(train, validation, test); use longer histories or lower --min-user-count.")
    most = max(len(set(s)) for s in evaluated)
    if data.n_items - most < config.eval_negatives:
        raise ValueError(f"eval_negatives={config.eval_negatives} cannot be sampled: {data.name or 'the data'} has "
                         f"{data.n_items:,} items and a user interacted with {most:,} of them, leaving "
                         f"{data.n_items - most:,} negatives; lower eval_negatives (--eval-negatives "
                         f"{max(1, data.n_items - most)}) or use a larger catalogue.")
    device = choose_device(config.device) if device is None else torch.device(device)
    need, have = training_memory_lower_bound(config, data.n_items), _machine_memory(device)
    if have is not None and need > have:
        raise ValueError(f"this model cannot fit: training it on {data.n_items:,} items needs at least "
                         f"{need / 2**30:,.1f} GiB but the {device.type} has {have / 2**30:,.1f} GiB; lower "
                         f"hidden_size={config.hidden_size}, inner_size={config.inner_size}, n_layers={config.n_layers}"
                         f", max_seq_length={config.max_seq_length} or batch_size={config.batch_size}.")


# ------------------------------------------------------------------------------------------------ training
@dataclass
class TrainResult:
    """What :func:`train` returns: the best model, the per-epoch history and the final metrics."""

    model: BERT4Rec
    history: pd.DataFrame
    valid: dict[str, dict[str, float]]
    test: dict[str, dict[str, float]]
    best_epoch: int
    config: BERT4RecConfig
    device: str
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def causal_batches(windows: torch.Tensor, batch_size: int, seed: int, epoch: int):
    """Next-item training pairs for the causal (SASRec-style) model: input ``w[:-1]``, label ``w[1:]``."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(windows), generator=generator)
    for start in range(0, len(windows), batch_size):
        w = windows[order[start : start + batch_size]]  # (b L)
        inputs = torch.nn.functional.pad(w[:, :-1], (1, 0))  # shift right: position t sees items < t
        labels = torch.where(inputs > 0, w, torch.zeros_like(w))
        keep = (labels > 0).any(dim=1)
        if keep.any():
            yield inputs[keep], labels[keep]


def curve_subset(n_users: int, eval_users: int, seed: int) -> list[int]:
    """Users whose metrics draw the learning curve: all of them (``eval_users=0``), or a fixed, seeded sample of
    ``eval_users`` -- the same users at every evaluation, so the curve moves only when the model does. The final
    valid/test numbers are always computed on every user."""
    if eval_users <= 0 or eval_users >= n_users:
        return list(range(n_users))
    generator = torch.Generator().manual_seed(seed + 7_919)
    return sorted(torch.randperm(n_users, generator=generator)[:eval_users].tolist())


def train(
    config: BERT4RecConfig,
    data: SequenceData,
    *,
    out_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    init_from: str | Path | None = None,
    stop_after_epoch: int | None = None,
    progress: bool = True,
    eval_batch_size: int = 1024,
    dataset_info: dict[str, Any] | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    time_budget_s: float | None = None,
) -> TrainResult:
    """Train BERT4Rec on ``data`` with ``config``; evaluate on validation; test the best model.

    With ``config.include_valid_in_train`` (the paper's protocol) the validation item is part of training, so the
    periodic evaluations are on the test split (``test_*`` columns of the history, a learning curve) and the final
    weights are tested; the returned ``valid`` metrics are then of items the model was trained on.

    ``out_dir`` receives ``checkpoint.pt`` after every epoch; ``resume_from`` continues such a checkpoint (same
    config and data) exactly where it stopped; ``init_from`` starts a *new* run (fresh optimizer and learning-rate
    schedule from ``config``) from the best weights of a checkpoint of the same model and data — a second
    training phase, e.g. another warm-up and decay after a finished run; ``stop_after_epoch`` ends this call
    early (as a crash would), which the resume test uses; ``time_budget_s`` stops after the first epoch that ends
    past that much training time.
    ``dataset_info`` (e.g. ``{"dataset": "ml-1m"}``) is stored in the checkpoint so that
    ``evaluate`` and ``recommend`` can reload the data.

    Under torchrun (a process group set up, e.g. by ``distributed.init_from_env``) every rank calls ``train``:
    ``config.batch_size`` is then the batch *per rank*, the global batch is ``batch_size x world_size`` and the
    learning rate is ``config.learning_rate`` as given; only rank 0 prints and writes (``distributed.py``).
    """
    set_threads(config.threads)  # 0 = default_threads(): one core left free, so a busy machine stays fast
    parallel = distributed.current()  # [distributed] rank 0 of 1 unless torchrun set up a process group
    device = parallel.place(choose_device(config.device))
    batch_size = config.batch_size * parallel.world_size  # [distributed] the global batch (= batch_size for 1 process)
    check_before_training(config, data, device)
    torch.manual_seed(config.seed)  # dropout (and BPR negatives) use the global generator; saved in checkpoints
    split = data.split(config.include_valid_in_train)
    item_counts = data.item_counts(config.include_valid_in_train)
    # The split that is watched during training: validation (and the best epoch on it is kept), or -- when the
    # validation item is trained on (the paper's protocol) -- the test split, for the curve only: no selection.
    watched = "test" if config.include_valid_in_train else "valid"
    watched_inputs, watched_targets = getattr(split, f"{watched}_inputs"), getattr(split, f"{watched}_targets")
    interacted = [data.sequences[u] for u in split.eval_users]  # never a sampled negative: all the user's items
    eval_kwargs = dict(max_len=config.max_seq_length, mask_id=data.mask_id, batch_size=eval_batch_size,
                       seed=config.seed, device=device, n_negatives=config.eval_negatives, shard=parallel.shard)
    curve_users = curve_subset(len(watched_targets), config.eval_users, config.seed)  # the curve's users
    model = BERT4Rec(config, data.n_items).to(device)
    if config.output_bias_init == "popularity":
        model.init_output_bias_from_popularity(item_counts)  # start as the popularity baseline
    if config.causal:
        windows = ClozeDataset(split.train, config.max_seq_length, config.mask_ratio, data.mask_id, data.n_items,
                               step=config.window_step, seed=config.seed).windows
        steps_per_epoch = math.ceil(len(windows) / batch_size)
    else:
        dataset = ClozeDataset(split.train, config.max_seq_length, config.mask_ratio, data.mask_id, data.n_items,
                               step=config.window_step, last_item_ratio=config.last_item_ratio, seed=config.seed,
                               rule=config.masking, max_predictions=config.max_predictions)
        steps_per_epoch = dataset.num_batches(batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(config.warmup_steps, total_steps))
    # bf16 autocast only where the GPU does bf16 natively (Ampere and newer; not e.g. Colab's T4)
    use_amp = config.amp and device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if config.compile:
        model.compile()
    loss_fn = model.loss if not parallel.enabled else parallel.replicate(model, device)  # [distributed] DDP replica
    if parallel.enabled and parallel.is_main:  # [distributed] state the global batch and the learning rate
        print(f"data-parallel: {parallel.world_size} processes ({parallel.backend}), global batch {batch_size} = "
              f"{config.batch_size} per rank x {parallel.world_size}, lr {config.learning_rate:g}, "
              f"{steps_per_epoch} steps per epoch")

    history: list[dict[str, float]] = []
    best = {"score": -1.0, "epoch": 0, "bad_evals": 0}
    final_metrics: dict[tuple[str, int], dict] = {}  # (split, epoch) -> metrics of an evaluation on all users
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch, elapsed = 1, 0.0
    dataset_info = {**(dataset_info or {"name": data.name}), "fingerprint": data.fingerprint()}
    if out_dir is not None and parallel.is_main:
        remove_stale_temporaries(out_dir)  # what a killed earlier run left half-written
    if resume_from is not None:
        state = load_checkpoint(resume_from, map_location=device)
        # (through from_dict, so that a checkpoint written before an option existed compares with its default)
        if BERT4RecConfig.from_dict(state["config"]) != config:
            raise ValueError(f"checkpoint {resume_from} was trained with another config or dataset; "
                             "resume with the config stored in it (BERT4RecConfig.from_dict(state['config'])).")
        check_checkpoint_data(state, data, f"checkpoint {resume_from}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        history, best, best_state = list(state["history"]), dict(state["best"]), state["best_model"]
        if history and history[-1].get("world_size", 1) != parallel.world_size:  # [distributed] batches depend on it
            raise ValueError(f"checkpoint {resume_from} was trained by {history[-1].get('world_size', 1)} processes; "
                             f"resume it with as many (torchrun --nproc_per_node), not {parallel.world_size}.")
        start_epoch, elapsed = state["epoch"] + 1, float(state["elapsed_seconds"])

    if init_from is not None:
        if resume_from is not None:
            raise ValueError("give resume_from (continue the same run) or init_from (new run from its weights), not both.")
        state = load_checkpoint(init_from, map_location=device)
        check_checkpoint_data(state, data, f"checkpoint {init_from}", sequences=False)  # same items, same meaning
        model.load_state_dict(state["best_model"] or state["model"])  # raises if the architecture differs

    last_epoch = min(config.epochs, stop_after_epoch or config.epochs)
    for epoch in range(start_epoch, last_epoch + 1):
        model.train()
        t0 = time.perf_counter()
        batches = (causal_batches(windows, batch_size, config.seed, epoch) if config.causal
                   else dataset.batches(batch_size, epoch, group_by_length=True))
        if parallel.enabled:  # [distributed] this rank's rows of every global batch; its own dropout seed
            batches = loss_fn.shard(batches)
            parallel.seed_epoch(config.seed, epoch)
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}",
                   disable=not (progress and parallel.is_main), leave=False, mininterval=1.0)
        loss_sum, n_steps, n_sequences, n_tokens = torch.zeros((), device=device), 0, 0, 0
        for inputs, labels in bar:
            n_sequences += len(inputs)
            n_tokens += int((labels > 0).sum())
            inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = loss_fn(inputs, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach()
            n_steps += 1
            if progress and n_steps % 20 == 0:
                rate = n_sequences / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{float(loss_sum) / n_steps:.3f}", seq_per_s=f"{rate:,.0f}")
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        if parallel.enabled:  # [distributed] the whole run's numbers, the same on every rank
            loss_sum, n_sequences, n_tokens, seconds = parallel.epoch_totals(loss_sum, n_sequences, n_tokens, seconds,
                                                                             device)
        elapsed += seconds
        row: dict[str, float] = {
            "epoch": epoch, "train_loss": float(loss_sum) / max(1, n_steps), "lr": scheduler.get_last_lr()[0],
            "epoch_seconds": seconds, "elapsed_seconds": elapsed,
            "sequences_per_s": n_sequences / seconds, "tokens_per_s": n_tokens / seconds,
        }
        if parallel.enabled:
            row.update(world_size=parallel.world_size, global_batch_size=batch_size)
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            watched_metrics = evaluate(model, [watched_inputs[u] for u in curve_users],
                                       [watched_targets[u] for u in curve_users], item_counts,
                                       interacted=[interacted[u] for u in curve_users], **eval_kwargs)
            if len(curve_users) == len(watched_targets):  # all users: reusable as the final numbers
                final_metrics[(watched, epoch)] = watched_metrics
            row.update(flatten_metrics(watched, watched_metrics))
            score = watched_metrics["full_filtered"]["NDCG@10"]  # the field's full ranking
            if watched == "test":  # nothing held out to select on: no copy kept, the final weights are the model
                best = {"score": score, "epoch": epoch, "bad_evals": 0}
            elif score > best["score"]:
                best = {"score": score, "epoch": epoch, "bad_evals": 0}
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                best["bad_evals"] += 1
        history.append(row)
        if on_epoch_end is not None:
            on_epoch_end(row)
        if progress and parallel.is_main:
            shown = {k: round(v, 4) for k, v in row.items()
                     if k in ("train_loss", f"{watched}_full_filtered_NDCG@10", f"{watched}_sampled_NDCG@10")}
            tqdm.write(f"epoch {epoch}: {shown} ({seconds:.1f}s)")
        stop = config.patience > 0 and best["bad_evals"] >= config.patience
        stop = stop or (time_budget_s is not None and elapsed >= time_budget_s)
        if out_dir is not None and parallel.is_main:  # [distributed] one writer
            save_checkpoint(Path(out_dir) / "checkpoint.pt", {
                "version": CHECKPOINT_VERSION, "config": config.to_dict(), "n_items": data.n_items,
                "epoch": epoch if not stop else config.epochs, "elapsed_seconds": elapsed,
                "model": model.state_dict(), "best_model": best_state, "best": best,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "history": history, "dataset": dataset_info,
            })
        if stop:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    # The final numbers: each split evaluated once on the reported weights (the final ones under the paper's
    # protocol, the best epoch's otherwise); an evaluation already made on exactly those weights is reused.
    reported_epoch = best["epoch"] if best_state is not None else (history[-1]["epoch"] if history else 0)

    def final(name: str) -> dict[str, dict[str, float]]:
        if (name, reported_epoch) in final_metrics:
            return final_metrics[(name, reported_epoch)]
        return evaluate(model, getattr(split, f"{name}_inputs"), getattr(split, f"{name}_targets"), item_counts,
                        interacted=interacted, **eval_kwargs)

    valid, test = final("valid"), final("test")
    extra = {"world_size": parallel.world_size, "global_batch_size": batch_size} if parallel.enabled else {}
    return TrainResult(model=model, history=pd.DataFrame(history), valid=valid, test=test, best_epoch=best["epoch"],
                       config=config, device=str(device), train_seconds=elapsed, extra=extra)


def evaluate_popularity(data: SequenceData, split_name: str = "test", seed: int = 0, n_negatives: int = 100,
                        include_valid_in_train: bool = False) -> dict[str, dict[str, float]]:
    """Metrics of the popularity baseline on the validation or test split (the floor every model must beat).

    Through the models' own path: the same training counts as the trainer (``include_valid_in_train`` as in the
    model's config), the same negatives (``seed``: pass the model's ``config.seed`` to match its numbers),
    never drawn from anything the user interacted with."""
    from .model import PopularityModel

    split = data.split(include_valid_in_train)
    histories = split.test_inputs if split_name == "test" else split.valid_inputs
    targets = split.test_targets if split_name == "test" else split.valid_targets
    counts = data.item_counts(include_valid_in_train)
    interacted = [data.sequences[u] for u in split.eval_users]
    return evaluate(PopularityModel(counts), histories, targets, counts, max_len=2, mask_id=data.mask_id, seed=seed,
                    device="cpu", n_negatives=n_negatives, interacted=interacted)

