"""Notebook 05: the learning-rate multiplier, linear warm-up then linear decay to 0 (train.py's schedule)."""


def warmup_linear_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    if step < warmup_steps:
        return (step + 1) / warmup_steps  # step 0 already gets 1/warmup_steps; step warmup_steps - 1 gets 1
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
