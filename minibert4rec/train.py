"""Training BERT4Rec: the loop of notebook 05, one named step per section.

One epoch = every sliding window of every user's *training* history (``seq[:-2]``) once, Cloze-masked anew
(``masking.make_dataset``: the Cloze data for BERT4Rec, next-item data for the causal model, one interface).
After every ``eval_every`` epochs the model ranks each user's validation item (``seq[-2]``) given ``seq[:-2]``
(``evaluate.py``); the best validation NDCG@10 (full ranking, seen items removed) picks the model that is finally
tested on ``seq[-1]`` given ``seq[:-1]`` -- the leave-one-out protocol of the paper.

The steps, in the order of ``def`` lines below (and of notebook 05): the device (:func:`choose_device`);
AdamW and the warm-up/decay schedule (:func:`make_optimizer`, :func:`make_scheduler`); bf16 autocast on a
GPU, or on a CPU when asked (:func:`use_bf16`); one training step
(:func:`training_step`); one epoch (:func:`train_epoch`); the evaluation hook that draws the curve and keeps the
best weights (:func:`watch`); the checkpoint written after every epoch and resumed from bit for bit
(:func:`checkpoint_state`, :func:`resume`; file handling in ``checkpoint.py``); the time budget and early stop
(:func:`should_stop`); the final evaluation (:func:`final_evaluation`); and :func:`train`, which calls them
after the checks of ``preflight.py``.
Data-parallel hooks (``distributed.py``) are marked ``[distributed]``. (A little over 300 lines: each step keeps
the docstring that says what it does and why.)
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from . import distributed
from .data import SequenceData
from .evaluate import PreparedSplit, curve_subset, evaluate_split, flatten_metrics, prepare_split
from .masking import make_dataset
from .model import BERT4Rec
from .support.checkpoint import CHECKPOINT_VERSION, check_checkpoint_data, load_checkpoint, save_checkpoint
from .support.config import BERT4RecConfig
from .support.files import remove_stale_temporaries
from .support.preflight import check_before_training, check_device
from .support.progress import tqdm  # widgets in Jupyter with ipywidgets, else text; never a warning
from .support.runtime import keeps_caller_threads, reuse_freed_memory, set_threads


# ------------------------------------------------------------------------------------- 1. which device?
def choose_device(requested: str = "auto") -> torch.device:
    """``"auto"`` picks the fastest device present: CUDA GPU, then Apple's MPS, then the CPU."""
    if requested != "auto":
        check_device(requested)  # one clear line for a device this machine does not have
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# ------------------------------------------------------------------------- 3. optimizer, warm-up then decay
def warmup_linear_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate multiplier: 0 -> 1 linearly over ``warmup_steps``, then 1 -> 0 linearly until ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def make_optimizer(model: torch.nn.Module, config: BERT4RecConfig) -> torch.optim.AdamW:
    """AdamW with BERT's habit, which the BERT4Rec authors kept: weight decay on every matrix, the embeddings
    included, and none on biases and LayerNorm scales (the 1-D parameters). ``config.weight_decay`` 0 (the
    default) turns it off; the authors used 0.01."""
    decay, no_decay = [], []
    for param in model.parameters():
        (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel updates every tensor (PyTorch's CPU and CUDA AdamW), instead of a dozen small operations per
    # parameter tensor; the same update up to float rounding (tests/test_train.py)
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in model.parameters())
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=fused)


def make_scheduler(optimizer: torch.optim.Optimizer, config: BERT4RecConfig,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """``config.warmup_steps`` of linear warm-up, then linear decay to 0 at ``total_steps``; stepped every batch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(config.warmup_steps, total_steps))


def plan_epochs(time_budget_s: float, epoch_seconds: list[float], max_epochs: int) -> int:
    """How many epochs fit in ``time_budget_s`` seconds of training, judged by the epochs run so far.

    A schedule that decays to zero at its last step ends with a settled model; cutting a long schedule short
    stops it while the learning rate is still high. So a time-budgeted run plans its decay to end when the budget
    does, and plans again after every epoch: the epochs already run, plus as many more as the time left holds at
    the pace of the latest epochs (the median of the last three, so that one slow epoch does not move the plan).
    Rounded to the nearest epoch, the run ends within about half an epoch of the budget, early or late. At most
    ``max_epochs``, never fewer than the epochs already run.
    """
    done, spent = len(epoch_seconds), sum(epoch_seconds)
    pace = statistics.median(epoch_seconds[-3:])  # seconds per epoch lately
    more = math.floor(max(0.0, time_budget_s - spent) / pace + 0.5)
    return max(done, min(max_epochs, done + more))


def replan_scheduler(scheduler: torch.optim.lr_scheduler.LambdaLR, config: BERT4RecConfig, total_steps: int) -> None:
    """Make the running schedule decay to 0 at ``total_steps`` instead (the step count it has reached is kept)."""
    scheduler.lr_lambdas = [warmup_linear_decay(config.warmup_steps, total_steps) for _ in scheduler.lr_lambdas]


def dropout_on(config: BERT4RecConfig, epoch: int, epochs: int, history: Sequence[dict] = ()) -> bool:
    """Whether epoch ``epoch`` (1-based) of a ``epochs``-epoch schedule trains with dropout.

    Dropout is on for the epochs between two shares of the schedule, ``config.dropout_start`` and
    ``config.dropout_stop``: a schedule for the regulariser, as warm-up and decay are one for the step size.

    * ``dropout_start`` s > 0: the first ``s * epochs`` epochs train without dropout. The idea is that dropout's
      noise slows a model that is still far from fitting the data.
    * ``dropout_stop`` s < 1: the epochs after the first ``s * epochs`` train without dropout, "early dropout"
      (Liu et al., "Dropout Reduces Underfitting", ICML 2023): the noise helps early, when the gradients of
      different batches disagree most, and a model that underfits its data (as a short run does) gains from
      fitting without it at the end, when the step size has decayed.

    Defaults 0 and 1: dropout from the first step to the last, as in the paper. ``history`` (the run's rows so far,
    each with its ``dropout`` flag): once dropout has stopped it stays off, although a planned schedule grows
    when its epochs get shorter, and epochs without dropout are shorter. What each choice measured on ML-1m is in
    docs/differences.md."""
    stopped = any(row.get("dropout") == 1.0 for row in history) and history[-1].get("dropout") == 0.0
    return not stopped and config.dropout_start * epochs < epoch <= config.dropout_stop * epochs


# ---------------------------------------------------------------------------- 4. mixed precision
def use_bf16(config: BERT4RecConfig, device: torch.device) -> bool:
    """Whether the training step runs under bf16 autocast: matrix products in bfloat16, the rest in float32.

    On a GPU (``amp``, on by default) where it does bf16 natively (Ampere and newer; not e.g. Colab's T4). On a
    CPU only when asked (``amp_cpu``) and where the CPU multiplies bf16 natively (AVX-512 BF16 or AMX): elsewhere
    oneDNN emulates it, more slowly than float32."""
    if device.type == "cuda":
        return config.amp and torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and config.amp_cpu and cpu_has_native_bf16()


def cpu_has_native_bf16() -> bool:
    """True where oneDNN computes bfloat16 matrix products natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


# ------------------------------------------------------------------------------------------------ 6. train
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


@dataclass
class RunState:
    """Everything about a run that is not a weight: what a checkpoint stores besides model and optimizer."""

    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=lambda: {"score": -1.0, "epoch": 0, "bad_evals": 0})
    best_state: dict[str, torch.Tensor] | None = None  # a copy of the best epoch's weights (None: the last ones)
    start_epoch: int = 1
    elapsed: float = 0.0
    planned_epochs: int | None = None  # a time-budgeted schedule's length, once planned (``plan_epochs``)
    final_metrics: dict[tuple[str, int], dict] = field(default_factory=dict)  # (split, epoch) -> all users' metrics


def training_step(loss_fn: Callable, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                  inputs: torch.Tensor, labels: torch.Tensor, config: BERT4RecConfig, bf16: bool) -> torch.Tensor:
    """Forward (under bf16 autocast where :func:`use_bf16`), backward, clip, AdamW step, schedule step: the loss."""
    with torch.autocast(device_type=inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn(inputs, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.clip_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.detach()


def train_epoch(model: torch.nn.Module, loss_fn: Callable, dataset: Any, optimizer: torch.optim.Optimizer,
                scheduler: Any, config: BERT4RecConfig, epoch: int, *, batch_size: int, device: torch.device,
                bf16: bool, parallel: distributed.Context, progress: bool, elapsed: float = 0.0,
                epochs: int | None = None) -> dict[str, float]:
    """One pass over the epoch's batches (grouped by length); its row of the history, without evaluation.
    ``elapsed``: the run's training seconds before this epoch (the row's ``elapsed_seconds`` adds this one's);
    ``epochs``: the run's planned length, for the progress bar (default ``config.epochs``)."""
    model.train()
    t0 = time.perf_counter()
    batches = dataset.batches(batch_size, epoch, group_by_length=True)
    if parallel.enabled:  # [distributed] this rank's rows of every global batch; its own dropout seed
        batches = loss_fn.shard(batches)
        parallel.seed_epoch(config.seed, epoch)
    bar = tqdm(batches, total=dataset.num_batches(batch_size), desc=f"epoch {epoch}/{epochs or config.epochs}",
               disable=not (progress and parallel.is_main), leave=False, mininterval=1.0)
    loss_sum, n_steps, n_sequences, n_tokens = torch.zeros((), device=device), 0, 0, 0
    for inputs, labels in bar:
        n_sequences += len(inputs)
        n_tokens += int((labels > 0).sum())
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss_sum += training_step(loss_fn, model, optimizer, scheduler, inputs, labels, config, bf16)
        n_steps += 1
        if progress and n_steps % 20 == 0:
            rate = n_sequences / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{float(loss_sum) / n_steps:.3f}", seq_per_s=f"{rate:,.0f}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if parallel.enabled:  # [distributed] the whole run's numbers, the same on every rank
        loss_sum, n_sequences, n_tokens, seconds = parallel.epoch_totals(loss_sum, n_sequences, n_tokens, seconds, device)
    row = {"epoch": epoch, "train_loss": float(loss_sum) / max(1, n_steps), "lr": scheduler.get_last_lr()[0],
           "epoch_seconds": seconds, "elapsed_seconds": elapsed + seconds, "sequences_per_s": n_sequences / seconds, "tokens_per_s": n_tokens / seconds}
    if parallel.enabled:
        row.update(world_size=parallel.world_size, global_batch_size=batch_size)
    return row


def watch(model: torch.nn.Module, data: SequenceData, config: BERT4RecConfig, run: RunState, epoch: int,
          watched: PreparedSplit, curve_users: list[int], **eval_kwargs: Any) -> dict[str, float]:
    """The evaluation hook: one point of the learning curve on ``watched`` ("valid", or "test" under the paper's
    protocol, for the curve only); keeps a copy of the best weights on full NDCG@10, seen items removed."""
    everyone = len(curve_users) == len(watched.targets)
    metrics = evaluate_split(model, data, config, watched, users=None if everyone else curve_users, **eval_kwargs)
    if everyone:  # all users: reusable as the final numbers
        run.final_metrics[(watched.name, epoch)] = metrics
    score = metrics["full_filtered"]["NDCG@10"]  # the field's full ranking
    if watched.name == "test":  # nothing held out to select on: no copy kept, the final weights are the model
        run.best = {"score": score, "epoch": epoch, "bad_evals": 0}
    elif score > run.best["score"]:
        run.best = {"score": score, "epoch": epoch, "bad_evals": 0}
        run.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    else:
        run.best["bad_evals"] += 1
    return flatten_metrics(watched.name, metrics)


def epoch_line(row: dict[str, float], split: str, epochs: int) -> str:
    """One compact progress line: ``epoch 3/60  loss 6.912  valid NDCG@10 0.041 (full, seen removed) ...``."""
    line = f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.3f}"
    if f"{split}_full_filtered_NDCG@10" in row:
        line += (f"  {split} NDCG@10 {row[f'{split}_full_filtered_NDCG@10']:.4f} (full, seen removed)"
                 f" {row[f'{split}_sampled_NDCG@10']:.4f} (100 sampled)")
    return line + f"  {row['epoch_seconds']:.1f} s"


def should_stop(config: BERT4RecConfig, run: RunState, time_budget_s: float | None) -> bool:
    """Early stop (``patience`` evaluations without a better validation score) or the time budget spent."""
    stop = config.patience > 0 and run.best["bad_evals"] >= config.patience
    return stop or (time_budget_s is not None and run.elapsed >= time_budget_s)


# ---------------------------------------------------------------------------- 7. checkpoints and resuming
def checkpoint_state(config: BERT4RecConfig, data: SequenceData, model: torch.nn.Module, optimizer: Any,
                     scheduler: Any, run: RunState, epoch: int, dataset_info: dict[str, Any]) -> dict[str, Any]:
    """What is saved after every epoch: weights, optimizer, schedule, RNG state, history -- all a resume needs."""
    return {"version": CHECKPOINT_VERSION, "config": config.to_dict(), "n_items": data.n_items,
            "epoch": epoch, "elapsed_seconds": run.elapsed, "model": model.state_dict(), "best_model": run.best_state,
            "best": run.best, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "history": run.history, "dataset": dataset_info, "planned_epochs": run.planned_epochs}


def resume(path: str | Path, config: BERT4RecConfig, data: SequenceData, model: torch.nn.Module, optimizer: Any,
           scheduler: Any, device: torch.device, world_size: int) -> RunState:
    """Load a checkpoint of this very run (same config and data) into model, optimizer, schedule and RNG."""
    state = load_checkpoint(path, map_location=device)
    # (through from_dict, so that a checkpoint written before an option existed compares with its default)
    if BERT4RecConfig.from_dict(state["config"]) != config:
        raise ValueError(f"checkpoint {path} was trained with another config or dataset; "
                         "resume with the config stored in it (BERT4RecConfig.from_dict(state['config'])).")
    check_checkpoint_data(state, data, f"checkpoint {path}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    history = list(state["history"])
    if history and history[-1].get("world_size", 1) != world_size:  # [distributed] batches depend on it
        raise ValueError(f"checkpoint {path} was trained by {history[-1].get('world_size', 1)} processes; "
                         f"resume it with as many (torchrun --nproc_per_node), not {world_size}.")
    return RunState(history=history, best=dict(state["best"]), best_state=state["best_model"],
                    start_epoch=state["epoch"] + 1, elapsed=float(state["elapsed_seconds"]),
                    planned_epochs=state.get("planned_epochs"))


def final_evaluation(model: torch.nn.Module, data: SequenceData, config: BERT4RecConfig, run: RunState,
                     splits: dict[str, PreparedSplit], **eval_kwargs: Any) -> tuple[dict, dict]:
    """Valid and test metrics, each split evaluated once on the reported weights (the best epoch's, or the final
    ones under the paper's protocol); an evaluation the curve already made on exactly those weights is reused."""
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    model.eval()
    reported_epoch = run.best["epoch"] if run.best_state is not None else (run.history[-1]["epoch"] if run.history else 0)
    return tuple(run.final_metrics.get((name, reported_epoch)) or evaluate_split(model, data, config, split, **eval_kwargs)
                 for name, split in splits.items())


@keeps_caller_threads  # the config's threads hold during the run; the caller's come back after it
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
    plan_schedule: bool = False,
) -> TrainResult:
    """Train BERT4Rec on ``data`` with ``config``; evaluate on validation; test the best model.

    With ``config.include_valid_in_train`` (the paper's protocol) the validation item is part of training, so the
    periodic evaluations are on the test split (``test_*`` columns of the history, a learning curve) and the final
    weights are tested; the returned ``valid`` metrics are then of items the model was trained on.

    ``out_dir`` receives ``checkpoint.pt`` after every epoch; ``resume_from`` continues such a checkpoint (same
    config and data) exactly where it stopped; ``init_from`` starts a *new* run (fresh optimizer and learning-rate
    schedule from ``config``) from the best weights of a checkpoint of the same model and data -- a second
    training phase, e.g. another warm-up and decay after a finished run; ``stop_after_epoch`` ends this call
    early (as a crash would), which the resume test uses; ``time_budget_s`` stops after the first epoch that ends
    past that much training time; with ``plan_schedule=True`` the run instead times its epochs and plans the
    learning-rate decay to end when the budget does, planning again after every epoch (:func:`plan_epochs`;
    ``config.epochs`` is then the most it may plan). ``dataset_info`` (e.g. ``{"dataset": "ml-1m"}``) is stored in the checkpoint so
    that ``evaluate`` and ``recommend`` can reload the data.

    Under torchrun (a process group set up, e.g. by ``distributed.init_from_env``) every rank calls ``train``:
    ``config.batch_size`` is then the batch *per rank*, the global batch is ``batch_size x world_size`` and the
    learning rate is ``config.learning_rate`` as given; only rank 0 prints and writes (``distributed.py``).
    """
    if plan_schedule and time_budget_s is None:
        raise ValueError("plan_schedule=True plans the schedule to end with the time budget; give time_budget_s too.")
    set_threads(config.threads)  # 0 = default_threads(): one core left free, so a busy machine stays fast
    parallel = distributed.current()  # [distributed] rank 0 of 1 unless torchrun set up a process group
    device = parallel.place(choose_device(config.device))
    if device.type == "cpu":
        reuse_freed_memory()  # a step reuses the pages the last one freed: no page faults (Linux; same numbers)
    batch_size = config.batch_size * parallel.world_size  # [distributed] the global batch (= batch_size for 1 process)
    check_before_training(config, data, device)
    if init_from is not None and resume_from is not None:
        raise ValueError("give resume_from (continue the same run) or init_from (new run from its weights), not both.")
    torch.manual_seed(config.seed)  # dropout (and BPR negatives) use the global generator; saved in checkpoints
    dataset = make_dataset(config, data.split(config.include_valid_in_train).train, data.n_items, data.mask_id)
    model = BERT4Rec(config, data.n_items).to(device)
    if config.output_bias_init == "popularity":
        model.init_output_bias_from_popularity(data.item_counts(config.include_valid_in_train))  # start as POP
    steps_per_epoch = dataset.num_batches(batch_size)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch * config.epochs)
    bf16 = use_bf16(config, device)
    if config.amp_cpu and device.type == "cpu" and not bf16 and parallel.is_main:
        warnings.warn("amp_cpu=True, but this CPU does not multiply bfloat16 natively (no AVX-512 BF16 or AMX), "
                      "where bf16 would be slower than float32: training in float32. Set amp_cpu=False to silence "
                      "this.", stacklevel=2)
    if config.compile:
        model.compile()
    loss_fn = model.loss if not parallel.enabled else parallel.replicate(model, device)  # [distributed] DDP replica
    if parallel.enabled and parallel.is_main:  # [distributed] state the global batch and the learning rate
        print(f"data-parallel: {parallel.world_size} processes ({parallel.backend}), global batch {batch_size} = "
              f"{config.batch_size} per rank x {parallel.world_size}, lr {config.learning_rate:g}, "
              f"{steps_per_epoch} steps per epoch")
    # The split watched during training: validation (its best epoch is kept), or -- when the validation item is
    # trained on (the paper's protocol) -- the test split, for the curve only: no selection.
    splits = {name: prepare_split(data, config, name) for name in ("valid", "test")}  # built once per run
    watched = splits["test" if config.include_valid_in_train else "valid"]
    curve_users = curve_subset(len(watched.targets), config.eval_users, config.seed)
    eval_kwargs = dict(batch_size=eval_batch_size, device=device, shard=parallel.shard)
    dataset_info = {**(dataset_info or {"name": data.name}), "fingerprint": data.fingerprint()}
    if out_dir is not None and parallel.is_main:
        remove_stale_temporaries(out_dir)  # what a killed earlier run left half-written
    run = RunState()
    if resume_from is not None:
        run = resume(resume_from, config, data, model, optimizer, scheduler, device, parallel.world_size)
    if init_from is not None:  # a new run from the best weights of another (same items, same meaning)
        state = load_checkpoint(init_from, map_location=device)
        check_checkpoint_data(state, data, f"checkpoint {init_from}", sequences=False)
        model.load_state_dict(state["best_model"] or state["model"])  # raises if the architecture differs
    planning = plan_schedule or run.planned_epochs is not None  # a resumed planned run keeps its plan
    if run.planned_epochs is not None:  # resumed: the same plan as before the interruption
        replan_scheduler(scheduler, config, steps_per_epoch * run.planned_epochs)

    epoch, last_epoch = run.start_epoch, min(config.epochs, stop_after_epoch or config.epochs)
    scheduled_dropout = config.dropout_start > 0 or config.dropout_stop < 1
    while epoch <= last_epoch:
        if scheduled_dropout:  # the plan's length, or before the first plan the most it may plan
            with_dropout = dropout_on(config, epoch, run.planned_epochs or config.epochs, run.history)
            model.set_dropout(with_dropout)
        row = train_epoch(model, loss_fn, dataset, optimizer, scheduler, config, epoch, batch_size=batch_size,
                          device=device, bf16=bf16, parallel=parallel, progress=progress, elapsed=run.elapsed,
                          epochs=run.planned_epochs if planning else None)
        run.elapsed = row["elapsed_seconds"]
        if scheduled_dropout:
            row["dropout"] = float(with_dropout)  # 1.0: this epoch trained with the model's dropout
        if planning and time_budget_s is not None:  # plan the decay again from the epochs' times so far
            # (epoch_seconds is the same number on every rank under torchrun, so every rank plans alike)
            run.planned_epochs = plan_epochs(time_budget_s, [r["epoch_seconds"] for r in run.history] +
                                             [row["epoch_seconds"]], config.epochs)
            replan_scheduler(scheduler, config, steps_per_epoch * run.planned_epochs)
        final_epoch = run.planned_epochs if planning else config.epochs
        if planning:
            last_epoch = min(run.planned_epochs, stop_after_epoch or run.planned_epochs)
        row["planned_epochs"] = final_epoch
        if epoch % config.eval_every == 0 or epoch == final_epoch:
            row.update(watch(model, data, config, run, epoch, watched, curve_users, **eval_kwargs))
        run.history.append(row)
        if on_epoch_end is not None:
            on_epoch_end(row)
        if progress and parallel.is_main:
            tqdm.write(epoch_line(row, watched.name, final_epoch))
        # a planned run ends with its plan (its last epoch may end a little past the budget), others at the budget
        stop = should_stop(config, run, None if planning else time_budget_s) or (planning and epoch >= final_epoch)
        if out_dir is not None and parallel.is_main:  # [distributed] one writer; a stopped run is a finished one
            save_checkpoint(Path(out_dir) / "checkpoint.pt", checkpoint_state(
                config, data, model, optimizer, scheduler, run, config.epochs if stop else epoch, dataset_info))
        if stop:
            break
        epoch += 1

    valid, test = final_evaluation(model, data, config, run, splits, **eval_kwargs)
    extra = {"world_size": parallel.world_size, "global_batch_size": batch_size} if parallel.enabled else {}
    return TrainResult(model=model, history=pd.DataFrame(run.history), valid=valid, test=test,
                       best_epoch=run.best["epoch"], config=config, device=str(device), train_seconds=run.elapsed,
                       extra=extra)
