"""Notebook 05 (training): the exercises on the learning-rate warm-up and its decay, with their check and hints.

The student's multiplier is compared with ``train.warmup_linear_decay`` at every step of four schedules.
"""

from __future__ import annotations

from typing import Callable

import torch

from .framework import CheckResult, Exercise, _against, _number_problem, _run, _tensor_problem, _type

EXERCISES: list[Exercise] = [
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
]


def check_warmup_linear_decay(fn: Callable) -> CheckResult:
    """``warmup_linear_decay(step, warmup_steps, total_steps) -> float``, the multiplier ``train.py`` uses."""
    from ..train import warmup_linear_decay

    cases = [(s, w, t) for w, t in [(10, 100), (1, 5), (0, 20), (4, 4)] for s in range(t + 3)]
    cases += [(s, 100, 1000) for s in (0, 1, 50, 98, 99, 100, 101, 550, 999, 1000, 1001)]
    return _run("warmup_linear_decay", fn, cases,
                _against(lambda s, w, t: warmup_linear_decay(w, t)(s), lambda e, g_: _number_problem(e, g_, tol=1e-9)))


EXERCISES.append(
    Exercise("adamw_step", "05", "implement",
             "One AdamW update of a parameter tensor, by hand: weight decay, the two moments, bias correction.",
             ("Decoupled weight decay first: param shrinks by lr * weight_decay * param, independent of the gradient.",
              "The moments: exp_avg = 0.9 exp_avg + 0.1 grad; exp_avg_sq = 0.999 exp_avg_sq + 0.001 grad^2.",
              "Bias correction with this update's number t (1 for the first): divide exp_avg by 1 - 0.9**t and "
              "exp_avg_sq by 1 - 0.999**t, then param -= lr * m_hat / (sqrt(v_hat) + 1e-8).")))


def _adamw_reference(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                     step: int, lr: float, weight_decay: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torch.optim.AdamW's own update, started from the given moments (``step`` = this update's number, from 1)."""
    p = torch.nn.Parameter(param.clone())
    optimizer = torch.optim.AdamW([p], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    optimizer.state[p] = {"step": torch.tensor(float(step - 1)), "exp_avg": exp_avg.clone(),
                          "exp_avg_sq": exp_avg_sq.clone()}
    p.grad = grad.clone()
    optimizer.step()
    state = optimizer.state[p]
    return p.detach(), state["exp_avg"], state["exp_avg_sq"]


def _three_tensors(expected: tuple, got: object) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return f"expected a tuple (param, exp_avg, exp_avg_sq), got {_type(got)}"
    for what, e, g in zip(("param", "exp_avg", "exp_avg_sq"), expected, got):
        problem = _tensor_problem(e, g, "float", atol=1e-6, what=what)
        if problem:
            return problem
    return None


def check_adamw_step(fn: Callable) -> CheckResult:
    """``adamw_step(param, grad, exp_avg, exp_avg_sq, step, lr, weight_decay) -> (param, exp_avg, exp_avg_sq)``,
    compared with ``torch.optim.AdamW`` (betas 0.9 / 0.999, eps 1e-8) on random tensors."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape, step, lr, wd in [((3,), 1, 1e-3, 0.0), ((4, 5), 1, 1e-2, 0.01), ((2, 3), 7, 2e-3, 0.0),
                                ((6,), 50, 1e-3, 0.1), ((3, 3), 1000, 5e-4, 0.01)]:
        param, grad = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
        fresh = step == 1
        exp_avg = torch.zeros(shape, dtype=torch.float64) if fresh else 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        exp_avg_sq = torch.zeros(shape, dtype=torch.float64) if fresh else 0.01 * torch.rand(shape, generator=g, dtype=torch.float64)
        cases.append((param, grad, exp_avg, exp_avg_sq, step, lr, wd))
    return _run("adamw_step", fn, cases, lambda args, got: _three_tensors(_adamw_reference(*args), got))

EXERCISES.append(
    Exercise("explore_planned_schedule", "05", "explore",
             "Same time budget, plan_schedule=False vs True: compare the final NDCG@10 and the last learning rate.",
             ("Keep the config, the seed and the budget; change only plan_schedule.",
              "Look at history['lr'] at the last epoch of each run.",
              "A run cut while the learning rate is high has not settled: its weights still move a lot each step.")))

EXERCISES.append(
    Exercise("explore_early_dropout", "05", "explore",
             "Same seed and epochs, dropout_stop=1 vs 0.25: where do the two curves part, and which ends higher?",
             ("Change only dropout_stop (config.replace(dropout_stop=0.25)); keep the seed and the number of "
              "epochs, and train without a time budget so that both runs follow the same schedule.",
              "history['dropout'] says which epochs trained with dropout; plot the validation NDCG@10 and the "
              "training loss against elapsed_seconds, with a line at the switch.",
              "Before the switch the two runs are the same run. After it, compare epoch_seconds too: under a time "
              "budget, how many more epochs would the plan fit in?")))
