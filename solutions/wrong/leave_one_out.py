"""Known-wrong: the training part keeps the validation item (leakage: the model trains on what it is tested on)."""


def leave_one_out(sequence: list[int]) -> tuple[list[int], int, int]:
    return sequence[:-1], sequence[-2], sequence[-1]
