"""Notebook 01: split one time-ordered history into (training part, validation target, test target)."""


def leave_one_out(sequence: list[int]) -> tuple[list[int], int, int]:
    # the newest item is the test target, the one before it the validation target;
    # the model trains on everything older, so neither target leaks into training
    return sequence[:-2], sequence[-2], sequence[-1]
