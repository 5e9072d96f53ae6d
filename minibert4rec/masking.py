"""The Cloze task: hide some items of a history and ask the model to fill them in (BERT4Rec, Sun et al. 2019, §3.6).

Shapes: b batch, n positions (= max_len), w windows. Ids: 0 = padding, 1..N items, N+1 = [mask].

1. **Windows** — a history longer than ``max_len`` is cut into overlapping windows (``sliding_windows``) that
   step back from the most recent item, so the last window always ends at the last training item.
2. **Left padding** — each window becomes a row of a LongTensor, padded on the left (``left_pad``), so the most
   recent item sits at position n-1 for every user.
3. **Masking** — ``cloze_mask`` hides exactly ``min(max_predictions, round(len * mask_ratio))`` real items of each
   row (the authors' rule, the trainer's default), or with ``rule="independent"`` each real item with probability
   ``mask_ratio`` (at least one per row); the labels hold the hidden item where masked and 0 (= ignore) elsewhere.
4. **Mask-last samples** — the test task is "predict the item after the history", i.e. a [mask] at the end.
   The paper adds training samples that mask only the last item (``mask_last``) to match it.
5. **Inference** — ``inference_inputs`` appends [mask] to each history; the prediction is read at position n-1.
6. **Datasets** — ``ClozeDataset`` (``NextItemDataset`` for the causal model) serves fresh masked batches every
   epoch. It builds every user's windows at once (``fast/windows.py``, equal to steps 1-2 user by user).

All randomness comes from an explicit ``torch.Generator``; the masking works on whole (b n) tensors at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .fast.windows import training_windows
from .support.config import BERT4RecConfig

PAD = 0


# --------------------------------------------------------------------------------------------- checks
def _check_max_len(max_len: int, minimum: int = 2) -> None:
    if not isinstance(max_len, int) or max_len < minimum:
        raise ValueError(f"max_len={max_len!r} must be an integer >= {minimum} (room for history + [mask]).")


def _check_items(items: torch.Tensor) -> None:
    if not isinstance(items, torch.Tensor) or items.ndim != 2 or items.dtype.is_floating_point:
        shape = tuple(items.shape) if isinstance(items, torch.Tensor) else type(items).__name__
        raise ValueError(f"items must be a 2-D integer tensor (b n) of item ids, got {shape}; "
                         "batch 1-D sequences with items[None] or left_pad(...).")


def _check_step(step: int | None, max_len: int) -> int:
    step = max(1, max_len // 2) if step is None else step
    if not isinstance(step, int) or not 1 <= step <= max_len:
        raise ValueError(f"step={step!r} must be an integer between 1 and max_len={max_len} "
                         "(a larger step would skip items between windows).")
    return step


# --------------------------------------------------------------------------------------------- padding & windows
def left_pad(seqs: list[list[int]], max_len: int, pad_id: int = PAD) -> torch.Tensor:
    """Keep the last ``max_len`` items of each sequence and pad on the left: list of b lists -> (b max_len).

    >>> left_pad([[1, 2, 3], [4]], 2)
    tensor([[2, 3],
            [0, 4]])
    """
    _check_max_len(max_len, minimum=1)
    out = torch.full((len(seqs), max_len), pad_id, dtype=torch.long)  # (b n)
    for row, seq in enumerate(seqs):
        recent = list(seq)[-max_len:]  # (max_len >= 1, so never the whole-list slice [-0:])
        if recent:
            out[row, max_len - len(recent):] = torch.tensor(recent, dtype=torch.long)
    return out


def inference_inputs(histories: list[list[int]], max_len: int, mask_id: int) -> torch.Tensor:
    """``history[-(L-1):] + [mask]``, left-padded: (b L). The model's prediction is read at position L-1.

    >>> inference_inputs([[1, 2, 3], [4]], 3, mask_id=9)
    tensor([[2, 3, 9],
            [0, 4, 9]])
    """
    _check_max_len(max_len)
    history = left_pad(histories, max_len - 1)  # (b L-1); note history[-0:] would be the whole list
    return torch.cat([history, torch.full((len(histories), 1), mask_id, dtype=torch.long)], dim=1)


def trim_left_padding(items: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Drop the leading columns that are padding in every row: (b n) -> (b n'), n' = the longest row.

    Exact for this package's models, which never attend to padding and index positions so that dropping
    all-padding columns changes no real item's index (``BERT4Rec.positions``, either counting rule).
    An all-padding batch keeps one column.

    >>> trim_left_padding(torch.tensor([[0, 0, 1, 2], [0, 3, 4, 5]]))
    tensor([[0, 1, 2],
            [3, 4, 5]])
    """
    first = int((items != pad_id).any(dim=0).int().argmax())  # first column holding a real item (0 if none)
    return items[:, first:]


def sliding_windows(sequence: list[int], max_len: int, step: int | None = None) -> list[list[int]]:
    """Cut one history into windows of at most ``max_len`` items, oldest first; ``step`` defaults to max_len // 2.

    >>> sliding_windows([1, 2, 3, 4, 5, 6, 7], max_len=4, step=2)
    [[1, 2, 3, 4], [2, 3, 4, 5], [4, 5, 6, 7]]
    """
    _check_max_len(max_len)
    step = _check_step(step, max_len)
    n = len(sequence)
    # windows end at n, n - step, n - 2 step, ... while they start after item 0; one more starts at item 0
    ends = [end for end in range(n, max_len, -step)][::-1]
    ends = ([min(n, max_len)] + ends) if n else []
    return [list(sequence[max(0, e - max_len):e]) for e in ends]


# --------------------------------------------------------------------------------------------- masking
def cloze_mask(items: torch.Tensor, mask_ratio: float, mask_id: int, generator: torch.Generator | None = None,
               n_items: int | None = None, replace_prob: tuple[float, float, float] = (1.0, 0.0, 0.0),
               rule: str = "fixed", max_predictions: int | None = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide some real items of each row: (b n) -> inputs (b n), labels (b n). Two rules for *how many*:

    * ``rule="fixed"`` (the authors' data generator, and the trainer's default): exactly ``k = min(max_predictions,
      max(1, round(L * mask_ratio)))`` of the row's L real items, a uniformly random subset of that size; never
      more than ``max_predictions`` (the authors' cap: 40 on ML-1m).
    * ``rule="independent"`` (RecBole's): each real item is hidden with probability ``mask_ratio``, and every row
      with at least one item gets at least one mask (if the coins hide none, the real item with the smallest draw
      is hidden: by symmetry a uniformly random one). About L * mask_ratio masks, with a binomial spread.

    In both,
    * padding (0) is never masked;
    * labels = the original item at masked positions, 0 elsewhere (0 = "no loss here");
    * ``replace_prob = (p_mask, p_random, p_keep)``: what a masked position shows the model. BERT uses
      (0.8, 0.1, 0.1): [mask] 80%, a random item from 1..n_items 10%, the item itself 10%. BERT4Rec uses (1, 0, 0).
    Under "independent", E[#masked] = L * mask_ratio + (1 - mask_ratio) ** L for a row with L items.
    """
    if rule not in ("independent", "fixed"):
        raise ValueError(f"rule={rule!r} must be 'independent' (each item with probability mask_ratio) or 'fixed' "
                         "(exactly round(L * mask_ratio) items, the authors' rule).")
    if rule == "fixed" and not (isinstance(max_predictions, int) and max_predictions >= 1):
        raise ValueError(f"max_predictions={max_predictions!r}: rule='fixed' needs a positive cap on the masks per "
                         "row (the authors use 40 on ML-1m).")
    _check_items(items)
    if not isinstance(mask_ratio, (int, float)) or not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio={mask_ratio!r} must be a number in [0, 1), e.g. the paper's 0.2.")
    if len(replace_prob) != 3 or min(replace_prob) < 0 or abs(sum(replace_prob) - 1.0) > 1e-6:
        raise ValueError(f"replace_prob={replace_prob!r} must be 3 non-negative probabilities (mask, random, keep) "
                         "summing to 1, e.g. (0.8, 0.1, 0.1) or (1.0, 0.0, 0.0).")
    if replace_prob[1] > 0 and not (isinstance(n_items, int) and n_items >= 1):
        raise ValueError(f"n_items={n_items!r}: random replacement (replace_prob[1] > 0) needs the number of items.")
    items = items.long()
    if items.numel() == 0:
        return items.clone(), torch.zeros_like(items)
    real = items != PAD  # (b n)
    draw = torch.rand(items.shape, generator=generator, device=items.device)  # (b n)
    if rule == "fixed":
        length = real.sum(dim=1, keepdim=True)  # (b 1) real items per row
        k = torch.round(length * mask_ratio).clamp(min=1, max=max_predictions).minimum(length)  # (b 1)
        # the k real items with the smallest draws: a uniformly random subset of size k (padding draws 2.0, last)
        rank = torch.where(real, draw, torch.full_like(draw, 2.0)).argsort(dim=1).argsort(dim=1)  # (b n)
        masked = rank < k
    else:
        masked = (draw < mask_ratio) & real
        smallest = torch.where(real, draw, torch.full_like(draw, 2.0)).argmin(dim=1, keepdim=True)  # (b 1)
        needs_one = (real.any(dim=1) & ~masked.any(dim=1))[:, None]  # (b 1)
        masked = masked.scatter(1, smallest, masked.gather(1, smallest) | needs_one)
    labels = torch.where(masked, items, torch.zeros_like(items))
    inputs = torch.where(masked, torch.full_like(items, mask_id), items)
    if replace_prob[0] < 1.0:
        action = torch.rand(items.shape, generator=generator, device=items.device)  # (b n)
        is_random = masked & (action >= replace_prob[0]) & (action < replace_prob[0] + replace_prob[1])
        is_kept = masked & (action >= replace_prob[0] + replace_prob[1])
        if replace_prob[1] > 0:
            random_items = torch.randint(1, n_items + 1, items.shape, generator=generator, device=items.device)
            inputs = torch.where(is_random, random_items, inputs)
        inputs = torch.where(is_kept, items, inputs)
    return inputs, labels


def mask_last(items: torch.Tensor, mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask only the last real item of each row (the test-time task): (b n) -> inputs (b n), labels (b n).

    >>> mask_last(torch.tensor([[0, 5, 6], [0, 0, 0]]), mask_id=9)
    (tensor([[0, 5, 9],
            [0, 0, 0]]), tensor([[0, 0, 6],
            [0, 0, 0]]))
    """
    _check_items(items)
    items = items.long()
    if items.numel() == 0:
        return items.clone(), torch.zeros_like(items)
    real = items != PAD  # (b n)
    last = (torch.arange(items.shape[1], device=items.device) * real).argmax(dim=1, keepdim=True)  # (b 1)
    masked = torch.zeros_like(real).scatter(1, last, real.gather(1, last))
    return torch.where(masked, mask_id, items), torch.where(masked, items, 0)


# --------------------------------------------------------------------------------------------- dataset
class WindowDataset:
    """What both training datasets share: ``self.windows`` (w n), one sample per window and epoch (a subclass may
    add samples), batches of ``batch_size``. ``len`` = the number of windows; ``dataset[i]`` = window i, unmasked."""

    windows: torch.Tensor

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.windows[index]

    @property
    def samples_per_epoch(self) -> int:
        return len(self.windows)

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(self.samples_per_epoch / batch_size)


class ClozeDataset(WindowDataset):
    """Training windows plus fresh Cloze masks every epoch, served as (inputs, labels) batches of shape (b n).

    The windows are built once (``self.windows``: (w n), left-padded, oldest window of each user first).
    Each epoch every window appears once as a Cloze sample, plus ``K = round(w * r / (1 - r))`` extra
    *mask-last* samples (windows drawn uniformly with replacement, ``r = last_item_ratio``), so that a fraction
    r of the epoch's ``w + K`` samples are mask-last samples — the paper's extra samples that match the test task.
    ``batches(batch_size, epoch)`` depends only on (seed, epoch): resuming at epoch e gives the same batches.
    """

    def __init__(self, train_sequences: list[list[int]], max_len: int, mask_ratio: float, mask_id: int, n_items: int,
                 step: int | None = None, last_item_ratio: float = 0.0, seed: int = 0,
                 replace_prob: tuple[float, float, float] = (1.0, 0.0, 0.0), rule: str = "fixed",
                 max_predictions: int | None = 40) -> None:
        _check_max_len(max_len)
        self.step = _check_step(step, max_len)
        if not isinstance(last_item_ratio, (int, float)) or not 0.0 <= last_item_ratio < 1.0:
            raise ValueError(f"last_item_ratio={last_item_ratio!r} must be a number in [0, 1), e.g. 0.1.")
        if mask_id in range(0, n_items + 1):
            raise ValueError(f"mask_id={mask_id} collides with padding or an item id 1..{n_items}; use n_items + 1.")
        self.windows, self.window_owner = training_windows(train_sequences, max_len, self.step, n_items)  # (w n), (w,)
        self.max_len, self.mask_ratio, self.mask_id, self.n_items = max_len, mask_ratio, mask_id, n_items
        self.last_item_ratio, self.seed, self.replace_prob = last_item_ratio, seed, tuple(replace_prob)
        self.rule, self.max_predictions = rule, max_predictions
        cloze_mask(self.windows[:1], mask_ratio, mask_id, n_items=n_items, replace_prob=self.replace_prob,
                   rule=rule, max_predictions=max_predictions)  # check the masking options now, not mid-epoch
        self.n_mask_last = round(len(self.windows) * last_item_ratio / (1.0 - last_item_ratio))

    @property
    def samples_per_epoch(self) -> int:
        """The windows plus the extra mask-last samples."""
        return len(self.windows) + self.n_mask_last

    def batches(self, batch_size: int, epoch: int, shuffle: bool = True,
                group_by_length: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``num_batches(batch_size)`` pairs (inputs (b n), labels (b n)); the last batch may be smaller.

        ``group_by_length=True`` is a speed trick that changes no result: the shuffled samples are cut into chunks
        of 50 batches, sorted by length inside each chunk, batched, and the batches shuffled again; then every
        batch drops its leading columns that are padding in every row, so n shrinks to the longest history in the
        batch. Short histories do not pay for 200 positions of padding. (``BERT4Rec.positions`` gives every real
        item the same index with or without those columns, so a trimmed batch gives the same outputs.)
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer.")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        w = len(self.windows)
        extra = torch.randint(0, w, (self.n_mask_last,), generator=generator)  # (K,) windows of mask-last samples
        source = torch.cat([torch.arange(w), extra])  # (w+K,) sample -> window
        is_last = torch.arange(w + self.n_mask_last) >= w  # (w+K,)
        order = torch.randperm(w + self.n_mask_last, generator=generator) if shuffle else torch.arange(len(source))
        picks = list(order.split(batch_size))
        if group_by_length:
            lengths = (self.windows[source] > 0).sum(dim=1)  # (w+K,) real items per sample
            picks = []
            for chunk in order.split(50 * batch_size):
                chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
                picks.extend(chunk.split(batch_size))
            picks = [picks[i] for i in torch.randperm(len(picks), generator=generator)]
        for pick in picks:
            items = self.windows[source[pick]]  # (b n)
            if group_by_length:
                items = trim_left_padding(items)
            inputs, labels = cloze_mask(items, self.mask_ratio, self.mask_id, generator, n_items=self.n_items,
                                        replace_prob=self.replace_prob, rule=self.rule,
                                        max_predictions=self.max_predictions)
            if self.n_mask_last:
                last_inputs, last_labels = mask_last(items, self.mask_id)
                row = is_last[pick][:, None]  # (b 1)
                inputs, labels = torch.where(row, last_inputs, inputs), torch.where(row, last_labels, labels)
            yield inputs, labels


# --------------------------------------------------------------------------------------------- next-item dataset
class NextItemDataset(WindowDataset):
    """The causal (SASRec-style) model's training data, with :class:`ClozeDataset`'s interface.

    The same windows as the Cloze dataset (``self.windows``: (w n)); a sample is no longer a masked window but
    the window shifted right by one: input ``[pad, w_0 .. w_{n-2}]``, label ``w`` wherever the input holds an item,
    so that position t, which sees items up to t-1, predicts item t. No [mask], no mask-last samples: every
    position is a training target. A window of a single item has nothing to predict from and is dropped from
    its batch. ``batches(batch_size, epoch)`` depends only on (seed, epoch), as for the Cloze dataset.
    """

    def __init__(self, train_sequences: list[list[int]], max_len: int, n_items: int, step: int | None = None,
                 seed: int = 0) -> None:
        _check_max_len(max_len)
        self.step = _check_step(step, max_len)
        self.windows, self.window_owner = training_windows(train_sequences, max_len, self.step, n_items)  # as Cloze's
        self.max_len, self.n_items, self.seed = max_len, n_items, seed

    def batches(self, batch_size: int, epoch: int, shuffle: bool = True,
                group_by_length: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield up to ``num_batches(batch_size)`` pairs (inputs (b n), labels (b n)) in a seeded shuffled order.

        ``group_by_length`` is accepted for the shared interface and changes nothing here: batches keep their full
        width, so that dropout, which draws its masks in the batch's shape, sees the same shapes either way.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer.")
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.windows), generator=generator) if shuffle else torch.arange(len(self.windows))
        for pick in order.split(batch_size):
            window = self.windows[pick]  # (b n)
            inputs = torch.nn.functional.pad(window[:, :-1], (1, 0))  # shift right: position t sees items < t
            labels = torch.where(inputs > 0, window, torch.zeros_like(window))
            keep = (labels > 0).any(dim=1)
            if not keep.any():
                continue
            yield inputs[keep], labels[keep]


def make_dataset(config: BERT4RecConfig, train_sequences: list[list[int]], n_items: int,
                 mask_id: int) -> ClozeDataset | NextItemDataset:
    """The training data ``config`` asks for: Cloze samples for BERT4Rec, next-item samples for the causal model."""
    if config.causal:
        return NextItemDataset(train_sequences, config.max_seq_length, n_items, step=config.window_step,
                               seed=config.seed)
    return ClozeDataset(train_sequences, config.max_seq_length, config.mask_ratio, mask_id, n_items,
                        step=config.window_step, last_item_ratio=config.last_item_ratio, seed=config.seed,
                        rule=config.masking, max_predictions=config.max_predictions)
