"""Known-wrong: warm-up off by one (step / warmup_steps), so the first step has learning rate 0."""


def warmup_linear_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    if step < warmup_steps:
        return step / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
