"""Exercises that check themselves: ``check_<name>(fn)``, ``hint(name)``, ``solution(name)``, ``list_exercises()``.

Every notebook ends with exercises of rising difficulty: a *question* (answer in prose; ``solution`` prints a model
answer), one or two *implement* exercises, and in notebooks 05 and 07 an *explore* experiment. An implement
exercise is one cell, ending with its check (the notebook imported ``check_leave_one_out, hint, solution`` from
this module earlier)::

    def leave_one_out(sequence: list[int]) -> tuple[list[int], int, int]:
        raise NotImplementedError  # replace this line with your code
    check_leave_one_out(leave_one_out)

The check runs your function on hand-picked edge cases and seeded random inputs, compares it with the package's
own implementation and returns a :class:`CheckResult`. Jupyter shows the result of a cell's last line, and a
CheckResult shows itself as its verdict, so the cell prints exactly one of::

    ✅ leave_one_out: correct (14 cases)
    ❌ leave_one_out: wrong on case 2 of 14   (then the input, what was expected and what your function gave)
    ⏳ leave_one_out: not attempted ...       (your function still raises NotImplementedError)

A check never raises: whatever your function does (raise, return nonsense, change its input in place) becomes a
"wrong" verdict with the reason. Its inputs are seeded, so the verdict is the same on every run. In a script, use
``print(check_x(fn))``; a CheckResult is truthy only when correct, and ``.passed`` is True / False / None
(correct / wrong / not attempted) for grading. ``grade_notebook(path)`` collects the verdicts of a notebook.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from einops import einsum

CORRECT, WRONG, NOT_ATTEMPTED = "correct", "wrong", "not attempted"
SOLUTIONS_DIR = Path(__file__).resolve().parents[1] / "solutions"  # present in a git clone, not in a pip install


@dataclass(frozen=True, repr=False)
class CheckResult:
    """The outcome of one check. Its repr *is* the verdict, so a cell ending with a check shows it once."""

    name: str
    status: str  # "correct" | "wrong" | "not attempted"
    message: str  # the verdict text, first line "<symbol> <name>: <status>..."
    n_cases: int = 0

    @property
    def passed(self) -> bool | None:
        """True = correct, False = wrong, None = not attempted."""
        return {CORRECT: True, WRONG: False}.get(self.status)

    def __bool__(self) -> bool:
        return self.status == CORRECT

    def __repr__(self) -> str:
        return self.message

    __str__ = __repr__


@dataclass(frozen=True)
class Exercise:
    name: str
    notebook: str  # "01" .. "08"
    kind: str  # "question" (answer in prose), "implement" (has check_<name>), "explore" (a small experiment)
    task: str  # one line
    hints: tuple[str, ...]


# ============================================================================================ showing values compactly
class _Seed(int):
    """An argument that becomes a fresh ``torch.Generator().manual_seed(seed)`` at every call."""

    def __repr__(self) -> str:
        return f"torch.Generator().manual_seed({int(self)})"


def _fresh(x: Any) -> Any:
    """A private copy of an argument, so that neither the student nor the reference sees the other's changes."""
    if isinstance(x, _Seed):
        return torch.Generator().manual_seed(int(x))
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, (list, tuple)):
        return type(x)(_fresh(v) for v in x)
    return x


def _fmt(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, float):
        text = f"{x + 0.0:.6g}"  # + 0.0 turns -0.0 into 0.0
        return text if any(c in text for c in ".ein") else text + ".0"  # 1.0, not 1: it is a float
    if isinstance(x, (list, tuple)):
        inner = ", ".join(_fmt(v) for v in x)
        return f"[{inner}]" if isinstance(x, list) else f"({inner}{',' if len(x) == 1 else ''})"
    return str(x)


def _show(x: Any, limit: int = 160) -> str:
    """Short readable form: small tensors and lists in full, big ones as a shape summary."""
    try:
        return _show_unsafe(x, limit)
    except Exception:  # a student's result whose repr fails
        return f"<{type(x).__name__}>"


def _show_unsafe(x: Any, limit: int) -> str:
    if isinstance(x, _Seed):
        return repr(x)
    if isinstance(x, torch.Tensor):
        text = f"tensor({_fmt(x.detach().cpu().tolist())})" if x.numel() <= 64 else ""
        if 0 < len(text) <= limit:
            return text
        return f"<{str(x.dtype).replace('torch.', '')} tensor of shape {tuple(x.shape)}>"
    if isinstance(x, (list, tuple)) and len(x) and all(isinstance(v, (torch.Tensor, _Seed)) for v in x):
        return "(" + ", ".join(_show(v, limit) for v in x) + ")"
    text = _fmt(x) if isinstance(x, (list, tuple, int, float)) else repr(x)
    if len(text) <= limit:
        return text
    return f"<{type(x).__name__} of length {len(x)}>" if isinstance(x, (list, tuple)) else text[:limit] + "..."


def _scalar(t: torch.Tensor) -> str:
    return _fmt(t.item())


# ============================================================================================ comparing results
def _tensor_problem(expected: torch.Tensor, got: Any, kind: str, atol: float = 1e-5, what: str = "") -> str | None:
    """Why ``got`` differs from ``expected`` (kind: "int", "bool" or "float"), or None when they agree."""
    what = f"{what}: " if what else ""
    if not isinstance(got, torch.Tensor):
        return f"{what}got {_type(got)}, expected a tensor of shape {tuple(expected.shape)}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"{what}shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    is_float, is_bool = got.dtype.is_floating_point or got.dtype.is_complex, got.dtype == torch.bool
    wanted = {"bool": is_bool, "int": not (is_float or is_bool), "float": is_float}[kind]
    if not wanted:
        name = {"bool": "torch.bool", "int": "an integer dtype (torch.long)", "float": "a float dtype"}[kind]
        return f"{what}dtype {got.dtype}, expected {name}"
    got = got.detach().cpu()
    if kind == "float":
        bad = ~torch.isclose(got.double(), expected.double(), rtol=1e-5, atol=atol)  # NaN in got -> bad
    else:
        bad = got != expected
    if not bad.any():
        return None
    index = tuple(bad.nonzero()[0].tolist())
    count = f" ({int(bad.sum())} of {bad.numel()} values differ)" if bad.numel() > 1 else ""
    return (f"{what}{'first difference at index ' + str(index) if index else 'wrong value'}: "
            f"expected {_scalar(expected[index])}, got {_scalar(got[index])}{count}")


def _type(x: Any) -> str:
    return "None" if x is None else f"a {type(x).__name__}"


def _number_problem(expected: float, got: Any, integer: bool = False, tol: float = 1e-6) -> str | None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    kinds = numbers.Integral if integer else numbers.Real
    if isinstance(got, bool) or not isinstance(got, kinds):
        return f"returned {_type(got)}, expected {'an int' if integer else 'a number'}"
    if integer and got != expected:
        return f"wrong value, off by {int(got) - int(expected):+d}"
    if not math.isclose(float(got), expected, rel_tol=tol, abs_tol=tol):
        return "wrong value" + (f", off by {float(got) - expected:+.4g}" if math.isfinite(float(got)) else "")
    return None


def _pair_problem(expected: tuple, got: Any, names: tuple[str, str], kind: str, atol: float = 1e-5) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"returned {_type(got)}, expected a pair ({names[0]}, {names[1]})"
    for name, e, g in zip(names, expected, got):
        problem = _tensor_problem(e, g, kind, atol, what=name)
        if problem:
            return problem
    return None


# ============================================================================================ running a check
def _hint_line(name: str) -> str:
    return f"   Stuck? hint('{name}') gives a hint, solution('{name}') the answer."


def _run(name: str, fn: Any, cases: list[tuple], judge: Callable[[tuple, Any], str | None]) -> CheckResult:
    """Call ``fn`` on every case (a tuple of arguments); ``judge(args, result)`` says what is wrong, or None."""
    if not callable(fn):
        return CheckResult(name, WRONG, f"❌ {name}: wrong — expected a function, got {_type(fn)}", 0)
    for i, args in enumerate(cases, 1):
        call = f"{name}({', '.join(_show(a, 100) for a in args)})"
        given = _fresh(args)
        try:
            got = fn(*given)
        except NotImplementedError:
            if i == 1:
                text = (f"⏳ {name}: not attempted — replace `raise NotImplementedError` with your code and run the "
                        f"cell again.\n{_hint_line(name)}")
                return CheckResult(name, NOT_ATTEMPTED, text, 0)
            problem, got = "raised NotImplementedError (on this case only)", None
        except Exception as error:  # anything the student's code raises is a wrong answer, never a crash
            message = str(error) if len(str(error)) <= 400 else str(error)[:400] + " ..."
            problem, got = f"raised {type(error).__name__}: {message}".replace("\n", "\n             "), None
        else:
            try:
                changed = [j for j, (a, b) in enumerate(zip(given, _fresh(args)))
                           if isinstance(a, torch.Tensor) and not torch.equal(a, b) or isinstance(a, list) and a != b]
                problem = (f"changed its argument {changed[0] + 1} in place; work on a copy (x.clone())" if changed
                           else judge(args, got))
            except Exception as error:  # e.g. a result whose comparison itself fails
                problem = f"failed while checking the result ({type(error).__name__}: {error})"
        if problem:
            lines = [f"❌ {name}: wrong on case {i} of {len(cases)}", f"   input:    {call}",
                     f"   problem:  {problem}"]
            if got is not None:
                lines.append(f"   got:      {_show(got)}")
            return CheckResult(name, WRONG, "\n".join(lines + [_hint_line(name)]), i)
    return CheckResult(name, CORRECT, f"✅ {name}: correct ({len(cases)} cases)", len(cases))


def _against(reference: Callable, compare: Callable[[Any, Any], str | None]) -> Callable[[tuple, Any], str | None]:
    """A judge that compares with ``reference(*args)`` and adds the expected value to the problem."""

    def judge(args: tuple, got: Any) -> str | None:
        expected = reference(*_fresh(args))
        problem = compare(expected, got)
        return f"{problem}\n   expected: {_show(expected)}" if problem else None

    return judge


def _left_padded(g: torch.Generator, b: int, n: int, n_items: int, min_len: int = 0) -> torch.Tensor:
    """(b n) random item ids, each row left-padded with 0 to a random length in [min_len, n]."""
    lengths = torch.randint(min_len, n + 1, (b, 1), generator=g)
    items = torch.randint(1, n_items + 1, (b, n), generator=g)
    return torch.where(torch.arange(n) >= n - lengths, items, 0)


# ============================================================================================ 01 data
def check_leave_one_out(fn: Callable) -> CheckResult:
    """``leave_one_out(sequence) -> (train_part, valid_target, test_target)``, as ``SequenceData.split`` does."""
    g = torch.Generator().manual_seed(1)
    cases = [([1, 2, 3, 4, 5],), ([7, 3],), ([4, 4, 4],), ([9, 8, 7, 6],)]
    cases += [(torch.randint(1, 100, (int(torch.randint(2, 30, (1,), generator=g)),), generator=g).tolist(),)
              for _ in range(10)]

    def compare(expected: tuple, got: Any) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return f"returned {_type(got)}, expected a tuple (train_part, valid_target, test_target)"
        train = got[0].tolist() if isinstance(got[0], torch.Tensor) else got[0]
        for what, e, g_ in zip(("training part", "validation target", "test target"), expected, (train, *got[1:])):
            if isinstance(g_, torch.Tensor) and g_.numel() == 1:
                g_ = g_.item()
            if (list(g_) if isinstance(g_, tuple) else g_) != e:
                return f"the {what} is {_show(g_)}, expected {_show(e)}"
        return None

    return _run("leave_one_out", fn, cases, _against(lambda s: (s[:-2], s[-2], s[-1]), compare))


def check_item_popularity(fn: Callable) -> CheckResult:
    """``item_popularity(sequences, n_items) -> LongTensor (n_items + 1,)``: occurrences of each item, index 0 = 0."""
    g = torch.Generator().manual_seed(2)
    cases = [([[1, 2, 3], [2, 3], [3]], 3), ([[1, 1, 1]], 4), ([[], [2]], 2), ([], 2)]
    for _ in range(3):  # ids 1..30 out of 35: the last items are never seen
        cases.append(([torch.randint(1, 31, (int(torch.randint(0, 16, (1,), generator=g)),), generator=g).tolist()
                       for _ in range(20)], 35))

    def reference(sequences: list[list[int]], n_items: int) -> torch.Tensor:
        flat = torch.tensor([i for s in sequences for i in s], dtype=torch.long)
        return torch.bincount(flat, minlength=n_items + 1)

    return _run("item_popularity", fn, cases, _against(reference, lambda e, g_: _tensor_problem(e, g_, "int")))


# ============================================================================================ 02 masking
def check_cloze_mask(fn: Callable) -> CheckResult:
    """``cloze_mask(items, mask_ratio, mask_id, generator) -> (inputs, labels)``, checked by its properties."""
    g = torch.Generator().manual_seed(3)
    big = _left_padded(g, 2000, 50, 300, min_len=0)
    cases = [(torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]]), 0.5, 9, _Seed(0)),
             (torch.tensor([[0, 0, 0, 0], [0, 0, 0, 7], [1, 2, 3, 4]]), 0.2, 8, _Seed(1)),
             (big, 0.2, 301, _Seed(2)), (big, 0.5, 301, _Seed(3)), (big, 0.2, 301, _Seed(4))]

    def judge(args: tuple, got: Any) -> str | None:
        items, ratio, mask_id, seed = args
        problem = _pair_problem((items, items), got, ("inputs", "labels"), "int")
        if problem and "difference" not in problem:  # a shape or type problem; values are checked below
            return problem
        inputs, labels = got[0].cpu(), got[1].cpu()
        real, masked = items != 0, labels != 0
        if (masked & (labels != items)).any():
            return "labels must hold the original item at masked positions and 0 elsewhere (0 = no loss, not -100)"
        if (inputs[~real] != 0).any():
            return "padding (0) was masked: inputs and labels must stay 0 where items == 0"
        if (inputs != torch.where(masked, mask_id, items)).any():
            return f"inputs must be mask_id={mask_id} exactly where labels > 0 and the item itself elsewhere"
        empty = real.any(dim=1) & ~masked.any(dim=1)
        if empty.any():
            return f"row {int(empty.nonzero()[0])} has items but none is masked (mask at least one per row)"
        lengths = real.sum(dim=1).double()
        expected = (lengths * ratio + (1 - ratio) ** lengths * (lengths > 0)).sum()  # at-least-one rule included
        spread = 5 * (lengths * ratio * (1 - ratio)).sum().sqrt() + 1
        if abs(masked.sum() - expected) > spread:
            return (f"masked {masked.sum() / lengths.sum():.1%} of the real items, expected about "
                    f"{expected / lengths.sum():.1%} (mask_ratio={ratio} plus one per row when none)")
        again = fn(*_fresh(args))
        if not all(torch.equal(a.cpu(), b) for a, b in zip(again, (inputs, labels))):
            return "a second call with the same generator seed gave other masks: draw only from `generator`"
        if int(seed) == 4:
            other = fn(*_fresh((items, ratio, mask_id, _Seed(5))))
            if torch.equal(other[1].cpu(), labels):
                return "generator seeds 4 and 5 gave the same masks: the masks must be random"
        return None

    return _run("cloze_mask", fn, cases, judge)


def check_mask_last(fn: Callable) -> CheckResult:
    """``mask_last(items, mask_id) -> (inputs, labels)``: only the last real item of each row is masked."""
    from .masking import mask_last

    g = torch.Generator().manual_seed(4)
    cases = [(torch.tensor([[0, 5, 6], [0, 0, 0]]), 9), (torch.tensor([[1, 2, 3]]), 4), (torch.tensor([[3]]), 4),
             (_left_padded(g, 8, 6, 100), 101), (_left_padded(g, 64, 20, 500), 501)]
    compare = lambda e, g_: _pair_problem(e, g_, ("inputs", "labels"), "int")  # noqa: E731
    return _run("mask_last", fn, cases, _against(mask_last, compare))


# ============================================================================================ 03 attention
def check_scaled_dot_product_attention(fn: Callable) -> CheckResult:
    """``scaled_dot_product_attention(q, k, v, attn_mask=None) -> out (b h n d)``; True in the mask = may attend."""
    from .attention import causal_mask, scaled_dot_product_attention

    g = torch.Generator().manual_seed(5)
    qkv = lambda *shape: tuple(torch.randn(shape, generator=g) for _ in range(3))  # noqa: E731
    small = tuple((torch.randn(1, 1, 3, 2, generator=g) * 10).round() / 10 for _ in range(3))
    pad = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]  # (b 1 1 n)
    pad6 = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]
    cases = [small, qkv(2, 2, 5, 8), qkv(1, 4, 7, 16), (*qkv(2, 2, 5, 8), pad),
             (*qkv(1, 2, 6, 4), causal_mask(6)), (*qkv(2, 2, 6, 4), pad6 & causal_mask(6))]  # last: rows see nothing

    def compare(expected: torch.Tensor, got: Any) -> str | None:
        if isinstance(got, tuple):
            return "returned a tuple; return only the output tensor (b, h, n, d)"
        return _tensor_problem(expected, got, "float", atol=1e-5)

    return _run("scaled_dot_product_attention", fn, cases,
                _against(lambda *a: scaled_dot_product_attention(*a)[0], compare))


def check_causal_mask(fn: Callable) -> CheckResult:
    """``causal_mask(n) -> bool (n, n)``, True where query i may attend key j (j <= i)."""
    from .attention import causal_mask

    cases = [(1,), (2,), (3,), (4,), (7,)]
    compare = lambda e, g_: _tensor_problem(e, g_, "bool")  # noqa: E731
    return _run("causal_mask", fn, cases, _against(lambda n: causal_mask(n)[0, 0], compare))


# ============================================================================================ 04 model
def check_bert4rec_parameter_count(fn: Callable) -> CheckResult:
    """``bert4rec_parameter_count(hidden_size, inner_size, n_layers, n_items, max_seq_length) -> int``."""
    from .config import BERT4RecConfig
    from .model import BERT4Rec

    def reference(hidden: int, inner: int, layers: int, n_items: int, max_len: int) -> int:
        config = BERT4RecConfig(hidden_size=hidden, inner_size=inner, n_layers=layers, n_heads=1,
                                max_seq_length=max_len)
        return BERT4Rec(config, n_items).num_parameters()

    cases = [(8, 16, 1, 10, 5), (16, 32, 2, 50, 20), (12, 48, 1, 1, 2), (32, 128, 3, 1000, 50), (64, 256, 2, 3416, 200)]
    return _run("bert4rec_parameter_count", fn, cases,
                _against(reference, lambda e, g_: _number_problem(e, g_, integer=True)))


def check_output_scores(fn: Callable) -> CheckResult:
    """``output_scores(hidden (b, D), item_embeddings (N, D), bias (N,)) -> scores (b, N)``."""
    g = torch.Generator().manual_seed(6)
    rand = lambda *shape: torch.randn(shape, generator=g)  # noqa: E731
    hand = (torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
            torch.tensor([0.0, 0.5, -1.0]))
    cases = [hand, (rand(4, 8), rand(20, 8), rand(20)), (rand(3, 16), rand(1, 16), rand(1)),
             (rand(1, 4), rand(5, 4), rand(5))]
    reference = lambda h, e, b: einsum(h, e, "b D, N D -> b N") + b  # noqa: E731
    return _run("output_scores", fn, cases, _against(reference, lambda e, g_: _tensor_problem(e, g_, "float")))


# ============================================================================================ 05 training
def check_warmup_linear_decay(fn: Callable) -> CheckResult:
    """``warmup_linear_decay(step, warmup_steps, total_steps) -> float``, the multiplier ``train.py`` uses."""
    from .train import warmup_linear_decay

    cases = [(s, w, t) for w, t in [(10, 100), (1, 5), (0, 20), (4, 4)] for s in range(t + 3)]
    cases += [(s, 100, 1000) for s in (0, 1, 50, 98, 99, 100, 101, 550, 999, 1000, 1001)]
    return _run("warmup_linear_decay", fn, cases,
                _against(lambda s, w, t: warmup_linear_decay(w, t)(s), lambda e, g_: _number_problem(e, g_, tol=1e-9)))


# ============================================================================================ 06 evaluation
def check_ndcg_at_k(fn: Callable) -> CheckResult:
    """``ndcg_at_k(ranks, k) -> float``: mean over users of 1/log2(rank + 1) when rank <= k, else 0."""
    from .metrics import ndcg_at_k

    g = torch.Generator().manual_seed(7)
    cases = [(torch.tensor([1]), 10), (torch.tensor([3]), 10), (torch.tensor([10]), 10), (torch.tensor([11]), 10),
             (torch.tensor([2]), 1), (torch.tensor([1, 2, 3, 100]), 5)]
    cases += [(torch.randint(1, 300, (50,), generator=g), k) for k in (1, 5, 10, 20)]
    return _run("ndcg_at_k", fn, cases, _against(ndcg_at_k, _number_problem))


def check_target_rank(fn: Callable) -> CheckResult:
    """``target_rank(scores (b, N+1), targets (b,)) -> ranks (b,)``: 1-based, pessimistic ties, column 0 ignored."""
    from .metrics import target_ranks

    g = torch.Generator().manual_seed(8)
    cases = [(torch.tensor([[0.0, 0.5, 0.2, 0.9]]), torch.tensor([2])),
             (torch.tensor([[0.0, 1.0, 1.0, 1.0]]), torch.tensor([1])),  # ties count against the target
             (torch.tensor([[9.0, 0.1, 0.3]]), torch.tensor([1])),  # column 0 (padding) never competes
             (torch.tensor([[-math.inf, 0.3, 0.1, 0.2], [-math.inf, 0.3, 0.1, 0.2]]), torch.tensor([3, 1])),
             (torch.randint(0, 5, (16, 51), generator=g).float(), torch.randint(1, 51, (16,), generator=g)),
             (torch.randn(8, 101, generator=g), torch.randint(1, 101, (8,), generator=g))]
    return _run("target_rank", fn, cases, _against(target_ranks, lambda e, g_: _tensor_problem(e, g_, "int")))


# ============================================================================================ 07 attention maps
def check_attention_entropy(fn: Callable) -> CheckResult:
    """``attention_entropy(probs (..., n)) -> entropy (...)`` in nats, with 0 log 0 = 0."""
    from .attention import causal_mask, padding_mask, scaled_dot_product_attention

    g = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g) for _ in range(3))
    masked = scaled_dot_product_attention(q, k, v, padding_mask(torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]]))
                                          & causal_mask(5))[1]  # (2 2 5 5) with zeros and all-zero rows
    cases = [(torch.tensor([[0.25, 0.25, 0.25, 0.25]]),), (torch.tensor([[1.0, 0.0, 0.0]]),),
             (torch.tensor([[0.5, 0.5, 0.0, 0.0]]),), (torch.tensor([0.0, 0.0, 0.0]),),
             (torch.randn(3, 7, generator=g).softmax(-1),), (masked,)]
    reference = lambda p: -torch.special.xlogy(p, p).sum(-1)  # noqa: E731  xlogy(0, 0) = 0
    return _run("attention_entropy", fn, cases, _against(reference, lambda e, g_: _tensor_problem(e, g_, "float")))


# ============================================================================================ 08 distributed
def check_shard_rows(fn: Callable) -> CheckResult:
    """``shard_rows(inputs, labels, rank, world_size) -> (inputs, labels)``: rows rank, rank + world_size, ...
    of a global batch, trimmed of the leading columns that are padding in all of them (``distributed.shard_rows``)."""
    from .distributed import shard_rows

    g = torch.Generator().manual_seed(8)

    def batch(b: int, n: int, min_len: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        items = _left_padded(g, b, n, 50, min_len=min_len)
        items = items[torch.argsort((items > 0).sum(1), stable=True)]  # sorted by length, as in a grouped batch
        labels = torch.where(torch.rand(items.shape, generator=g) < 0.3, items, 0)
        return torch.where(labels > 0, 51, items), labels

    x = torch.tensor([[0, 0, 1], [0, 2, 3], [4, 5, 6], [0, 0, 7]])
    cases = [(x, x.clone(), 0, 2), (x, x.clone(), 1, 2), (x, x.clone(), 2, 4), (x[:1], x[:1].clone(), 1, 2)]
    cases += [(*batch(16, 12), r, 3) for r in range(3)] + [(*batch(7, 9, 0), 3, 4), (*batch(64, 20), 5, 8)]
    compare = lambda e, g_: _pair_problem(e, g_, ("inputs", "labels"), "int")  # noqa: E731
    return _run("shard_rows", fn, cases, _against(shard_rows, compare))


# ============================================================================================ the exercises
EXERCISES: dict[str, Exercise] = {e.name: e for e in [
    Exercise("split_leakage", "01", "question",
             "Why must the validation item be cut from the training part? What goes wrong if it stays?",
             ("Think about what the model has seen when it is asked to predict seq[-2].",
              "Early stopping picks the epoch with the best validation score: what would that score measure?",
              "If seq[-2] is a training target, a model that memorises its training sequences scores well on "
              "validation; is that the skill the test measures?")),
    Exercise("leave_one_out", "01", "implement",
             "Split one time-ordered history into (training part, validation target, test target).",
             ("The last item is the test target, the one before it the validation target.",
              "The training part is everything before the validation target: a slice with a negative end.",
              "Negative indices count from the end: sequence[-1] is the last item; a slice sequence[:-k] drops "
              "the last k.")),
    Exercise("item_popularity", "01", "implement",
             "Count each item's occurrences: LongTensor (n_items + 1,), index 0 (padding) = 0.",
             ("Flatten the sequences into one list of ids first.",
              "torch.bincount counts ids; its result is only as long as the largest id seen...",
              "...unless you pass minlength=n_items + 1. Build the tensor with dtype=torch.long (it may be "
              "empty).")),
    Exercise("expected_masks", "02", "question",
             "A row holds L = 10 items, mask_ratio = 0.2: how many items does cloze_mask hide on average?",
             ("Without the at-least-one rule the count is Binomial(L, p).",
              "The rule adds one mask exactly when the coin flips mask nothing: how likely is that?",
              "The rule adds exactly one mask in the rows where no coin fires: add that probability, for L "
              "independent coins, to the binomial mean.")),
    Exercise("cloze_mask", "02", "implement",
             "Hide each real item w.p. mask_ratio (never padding, >= 1 per row) -> (inputs, labels).",
             ("Draw one uniform number per position with torch.rand(items.shape, generator=generator); mask "
              "where it is below mask_ratio and the item is not padding (0).",
              "A row whose coins masked nothing but that has items: mask its real item with the smallest draw "
              "(argmin over the draws, after setting padding's draws to a value above 1).",
              "Labels keep the item where masked and are 0 elsewhere; inputs show mask_id where masked and the "
              "item elsewhere: two torch.where calls on the same boolean tensor.")),
    Exercise("mask_last", "02", "implement",
             "Mask only the last real item of each row (the test-time task) -> (inputs, labels).",
             ("Rows are left-padded: the last real item is in the last column...",
              "...except in a row that is all padding, where nothing may be masked.",
              "Build a boolean tensor that is True only in the last column of the non-empty rows, then make "
              "inputs and labels from it exactly as cloze_mask does.")),
    Exercise("why_not_inf", "03", "question",
             "attention.py fills masked scores with finfo.min, not -inf. Which rows would give NaN with -inf?",
             ("softmax divides exp(score) by the sum of exp over the row.",
              "Combine a left-padded row with a causal mask: what may the first (padded) query see?",
              "A row in which every score is -inf: what is exp(-inf) / (sum of exp(-inf))?")),
    Exercise("scaled_dot_product_attention", "03", "implement",
             "softmax(q k^T / sqrt(d)) v with a bool mask (True = may attend); a query that sees no key outputs 0.",
             ("Scores compare every query i with every key j: an einsum over the head dimension d ('b h i d, b "
              "h j d -> b h i j'), divided by the square root of d.",
              "Masked scores get the most negative float of their dtype (masked_fill with "
              "torch.finfo(dtype).min), not -inf; then softmax over the keys (the last dimension).",
              "After the softmax, set the masked probabilities to 0 (so a query that sees no key outputs 0), "
              "then mix the values with a second einsum over j.")),
    Exercise("causal_mask", "03", "implement",
             "Bool (n, n) matrix, True where query i (row) may attend key j (column), i.e. j <= i.",
             ("Row i is the query, column j the key. Which triangle is True?",
              "Query i may see keys 0..i: the diagonal and everything left of it.",
              "Start from an all-True (n, n) boolean tensor; torch has one method that keeps the lower triangle "
              "and one that keeps the upper.")),
    Exercise("tied_embeddings", "04", "question",
             "The output layer reuses the item embedding: how many parameters does that save (N = 3,416, D = 64)?",
             ("An untied output layer would need its own matrix with one row per item.",
              "Which rows of the (N + 2, D) embedding table are items?",
              "Count the parameters such a matrix would add, N x D, and compare with the model's total.")),
    Exercise("bert4rec_parameter_count", "04", "implement",
             "Count BERT4Rec's parameters from its sizes (must equal BERT4Rec(...).num_parameters()).",
             ("Read BERT4Rec.__init__: embeddings, blocks, output layer. A Linear(a, b) has a*b + b parameters, "
              "a LayerNorm(D) has 2D.",
              "The item table has N + 2 rows (padding, items, [mask]); positions have max_seq_length rows.",
              "A block: 4 Linear(D, D) for attention, Linear(D, inner) + Linear(inner, D), 2 LayerNorms. After "
              "the blocks: Linear(D, D), a LayerNorm, and a bias of N.")),
    Exercise("output_scores", "04", "implement",
             "Score every item: hidden . item embedding + item bias, (b, D), (N, D), (N,) -> (b, N).",
             ("Each score is a dot product between one user's hidden vector and one item's embedding.",
              "All users against all items at once is a matrix product: (b, D) with (N, D) gives (b, N); einsum "
              "names it 'b D, N D -> b N'.",
              "The bias has one entry per item, shape (N,): adding it to a (b, N) tensor broadcasts over the "
              "users.")),
    Exercise("warmup_values", "05", "question",
             "warmup_steps=100, total_steps=1000: the lr multiplier at steps 0, 99, 100, 550 and 1000?",
             ("Read warmup_linear_decay in train.py: step 0 is the first optimizer step.",
              "Warm-up reaches 1 at the end of step warmup_steps - 1; the decay ends at 0 at total_steps.",
              "Step 550 is halfway between the end of the warm-up (100) and the end of the run (1000).")),
    Exercise("warmup_linear_decay", "05", "implement",
             "The lr multiplier at a step: linear warm-up to 1, then linear decay to 0 at total_steps.",
             ("Two regimes: steps before warmup_steps, and the rest.",
              "Warm-up: a straight line through (step 0, 1 / warmup_steps) and (step warmup_steps - 1, 1): step "
              "0 already learns a little.",
              "Decay: a straight line from 1 at step warmup_steps to 0 at total_steps, never below 0; when "
              "warmup_steps equals total_steps its denominator is 0, so guard it with max(1, ...).")),
    Exercise("explore_warmup", "05", "explore",
             "Train with warmup_steps=0 and with the default; plot both loss curves. Which leaves the plateau first?",
             ("Keep everything else equal (config.replace(warmup_steps=0)) and the same seed.",
              "The plateau is the loss of predicting by popularity alone; compare the epoch each run drops "
              "below it.",
              "One run per value is anecdote: the plateau escape is chaotic. Try two seeds per value before "
              "concluding.")),
    Exercise("sampled_rank", "06", "question",
             "A target ranks 50th of 3,416 items. Expected rank among 100 uniform negatives? Effect on HR@10?",
             ("49 items beat the target. Each of the 100 negatives is one of them with probability 49 / 3415.",
              "Expected rank = 1 + expected number of negatives that beat it.",
              "Linearity of expectation: add up, over the 100 negatives, the probability that each one beats "
              "the target.")),
    Exercise("ndcg_at_k", "06", "implement",
             "Mean NDCG@k from the 1-based ranks of one relevant item per user.",
             ("Rank 1 is worth 1, rank 3 is worth 0.5, anything beyond k is worth 0.",
              "The gain of rank r is 1 / log2(r + 1); convert the ranks to float before the logarithm.",
              "Keep the gain where the rank is at most k and 0 elsewhere (torch.where), then average over users "
              "and return a Python float (.item()).")),
    Exercise("target_rank", "06", "implement",
             "Full-ranking rank of each target (pessimistic ties, column 0 ignored) -> LongTensor (b,).",
             ("rank = 1 + the number of other items scoring at least as high as the target.",
              "Take each user's target score with gather along dimension 1, keeping a column of shape (b, 1), "
              "and compare it with the whole score matrix at once.",
              "Column 0 is padding: leave it out of the count. The comparison 'at least as high' counts the "
              "target itself once, so the count of the other columns is already the rank.")),
    Exercise("max_entropy", "07", "question",
             "Largest possible entropy of an attention row over 10 real items? What does entropy near 0 mean?",
             ("Which distribution over m outcomes is the most uncertain?",
              "Padding keys have probability 0 and add 0 log 0 = 0.",
              "Evaluate -sum p log p for the uniform distribution over m keys: every term of the sum is the "
              "same.")),
    Exercise("attention_entropy", "07", "implement",
             "Entropy in nats of each attention row (last dim), with 0 log 0 = 0: (..., n) -> (...).",
             ("H(p) = - sum_j p_j log p_j over the last dimension.",
              "Where p = 0, p * log(p) is 0 * -inf = NaN in floating point, but its limit is 0.",
              "Replace those terms by 0 with torch.where (or use torch.special.xlogy(p, p), which does it for "
              "you), then sum over the keys and negate.")),
    Exercise("explore_heads", "07", "explore",
             "Mean attention entropy per layer and head over real queries: which heads focus, which average?",
             ("model(inputs, return_attention=True) gives one (b, h, n, n) tensor per layer; mean over b and "
              "the real query positions.",
              "Compare each head with ln(number of visible keys), the entropy of uniform attention.",
              "A head far below uniform focuses on a few keys; plot the entropy per (layer, head) as bars, next "
              "to the uniform value.")),
    Exercise("scaled_lr", "08", "question",
             "1 GPU: batch 128, lr 1e-3, 100 warm-up steps. 8 GPUs x 128: global batch, steps per epoch, lr, warm-up?",
             ("The global batch is what one optimizer step averages over; an epoch is still every sample once.",
              "Goyal et al. scale the lr with the batch (the linear rule); for Adam a square-root rule is the "
              "common start.",
              "Warm-up is counted in optimizer steps: how many samples did the old warm-up see?")),
    Exercise("shard_rows", "08", "implement",
             "This rank's rows (rank, rank + world_size, ...) of a global batch, without all-padding leading columns.",
             ("A slice with a step picks every world_size-th row.",
              "The first column to keep is the first one where any of YOUR rows is not padding (0).",
              "Cut the labels at the same column as the inputs. A rank may get no rows at all: keep every column "
              "then.")),
    Exercise("explore_ddp_lr", "08", "explore",
             "2 processes x batch 64 vs 1 x 128 vs 2 x 128 (lr 1e-3 and 2e-3): which curves match, which learn faster?",
             ("Compare the global batches: which runs take the same optimizer steps?",
              "A larger global batch means fewer steps per epoch: plot NDCG@10 against epochs and against steps.",
              "Then change only the learning rate of the larger batch and compare again.")),
]}

CHECKS: dict[str, Callable[[Callable], CheckResult]] = {
    name: globals()[f"check_{name}"] for name, e in EXERCISES.items() if e.kind == "implement"}


def _exercise(name: str) -> Exercise:
    if name not in EXERCISES:
        close = difflib.get_close_matches(str(name), EXERCISES, n=1)
        suggestion = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"unknown exercise {name!r}; {suggestion}list_exercises() shows them all.")
    return EXERCISES[name]


def hint(name: str, level: int = 1) -> None:
    """Print the first ``level`` hints of an exercise, each more helpful than the last.

    A ladder: levels 1 to 3 are hints and none of them is the answer; the last rung is ``solution(name)``.
    """
    hints = _exercise(name).hints
    level = max(1, min(int(level), len(hints)))
    for i in range(level):
        print(f"Hint {i + 1}/{len(hints)}: {hints[i]}")
    if level < len(hints):
        print(f"(more: hint('{name}', {level + 1}))")
    else:
        print(f"(that was the last hint; the answer: solution('{name}'))")


def solution_path(name: str) -> Path:
    """Where the solution of an exercise lives in a git clone: solutions/<name>.py (questions: .md)."""
    return SOLUTIONS_DIR / f"{name}{'.py' if _exercise(name).kind == 'implement' else '.md'}"


def solution(name: str) -> None:
    """Print the solution of an exercise (from the repository's solutions/ folder)."""
    path = solution_path(name)
    if path.is_file():
        print(f"# {path.parent.name}/{path.name}\n{path.read_text(encoding='utf-8').rstrip()}")
    else:
        print(f"The solution is the file solutions/{path.name} of the minibert4rec repository; it is not part of "
              "the installed package. Open it on GitHub, or clone the repository (git clone) to have it locally.")


def list_exercises(notebook: str | int | None = None) -> None:
    """Print a table of the exercises (all, or those of one notebook: list_exercises(3))."""
    wanted = None if notebook is None else f"{int(notebook):02d}"
    rows = [e for e in EXERCISES.values() if wanted in (None, e.notebook)]
    width = max(len(e.name) for e in rows) if rows else 4
    print(f"{'nb':<3} {'name':<{width}} {'kind':<9} task")
    for e in rows:
        print(f"{e.notebook:<3} {e.name:<{width}} {e.kind:<9} {e.task}")


# ============================================================================================ grading
_VERDICT = re.compile(r"^(?:✅|❌|⏳) (\w+): (correct|wrong|not attempted)", re.MULTILINE)


def grade_notebook(path: str | Path, execute: bool = True, timeout: int = 1800,
                   workdir: str | Path | None = None) -> dict[str, str]:
    """Verdict of each implement exercise of a submitted notebook: {name: "correct" | "wrong" | "not attempted" |
    "missing"} ("missing" = its check never ran).

    ``execute=True`` re-runs the notebook in a fresh kernel (needs nbclient and ipykernel, which the ``[dev]`` extra
    installs) so that the verdicts come from the student's code, not from the outputs stored in the file; cells
    that fail do not stop the run; the kernel starts in ``workdir`` (default: the notebook's folder; pass the
    repository's ``notebooks/`` folder so relative data paths resolve as in the repository). ``execute=False``
    only reads the stored outputs. The notebook number is taken from the file name (``05_*.ipynb``); other
    verdicts found are reported too.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if execute:
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=timeout, allow_errors=True,
                       resources={"metadata": {"path": str(Path(workdir or path.parent).resolve())}}).execute()
    found: dict[str, str] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            for name, status in _VERDICT.findall("".join(text) if isinstance(text, list) else text):
                found[name] = status  # the last verdict of an exercise counts
    number = path.name[:2]
    verdicts = {e.name: "missing" for e in EXERCISES.values() if e.notebook == number and e.kind == "implement"}
    return verdicts | found


def _main(argv: list[str] | None = None) -> None:
    """python -m minibert4rec.exercises list | grade NOTEBOOK.ipynb ... [--no-execute] [--workdir DIR]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m minibert4rec.exercises", description=_main.__doc__)
    parser.add_argument("command", choices=["list", "grade"])
    parser.add_argument("notebooks", nargs="*", help="submitted notebooks (grade)")
    parser.add_argument("--no-execute", action="store_true", help="read the stored outputs, do not re-run")
    parser.add_argument("--workdir", default=None, help="folder the kernel starts in (default: the notebook's)")
    args = parser.parse_intermixed_args(argv)
    if args.command == "list":
        list_exercises()
    for file in args.notebooks if args.command == "grade" else []:
        verdicts = grade_notebook(file, execute=not args.no_execute, workdir=args.workdir)
        done = sum(v == CORRECT for v in verdicts.values())
        print(f"{file}: {done}/{len(verdicts)} correct  " + "  ".join(f"{k}={v}" for k, v in verdicts.items()))


if __name__ == "__main__":
    _main()
