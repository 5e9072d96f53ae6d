"""Notebook 05 (training): the exercises on the learning-rate warm-up and its decay, with their check and hints.

The student's multiplier is compared with ``train.warmup_linear_decay`` at every step of four schedules.
"""

from __future__ import annotations

from typing import Callable

from .framework import CheckResult, Exercise, _against, _number_problem, _run

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
