"""How a check works: run a student's function on cases, judge each result, and say what went wrong.

This module is the machinery behind every ``check_<name>``; the exercises themselves (tasks, hints, cases) are in
the ``nbXX_*`` modules next to it, their list in ``registry``, the hint ladder and solutions in ``__init__`` and
grading in ``grading``.

- :class:`CheckResult` is a verdict: correct, wrong (with the failing input, the problem, what was expected and
  what the function gave) or not attempted. Its repr *is* the verdict text that a notebook cell shows.
- :class:`Exercise` describes one exercise: its notebook, its kind, a one-line task and three hints.
- ``_run(name, fn, cases, judge)`` calls ``fn`` on each case (a tuple of arguments) on a private copy, so that
  in-place changes are caught, and turns anything ``fn`` raises into a "wrong" verdict: a check never raises.
- A judge says what is wrong with one result, or None; ``_against(reference, compare)`` makes the usual one,
  comparing with the package's own implementation through ``_tensor_problem``, ``_number_problem`` or
  ``_pair_problem``. ``_show`` prints inputs and results compactly (big tensors as their shape).
- ``_Seed(k)`` is an argument that becomes a fresh ``torch.Generator().manual_seed(k)`` at every call, so random
  checks give the same verdict on every run.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

import torch

CORRECT, WRONG, NOT_ATTEMPTED = "correct", "wrong", "not attempted"


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

    @property
    def function(self) -> str:
        """The name the notebook gives the student's function, which its check is called on: the exercise's own
        name (``check_ndcg_at_k(ndcg_at_k)``). Grading looks the function up by this name."""
        return self.name


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

