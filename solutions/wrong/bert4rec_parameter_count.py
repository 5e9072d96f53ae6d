"""Known-wrong: the item table gets N + 1 rows (padding counted, the [mask] row forgotten)."""


def bert4rec_parameter_count(hidden_size: int, inner_size: int, n_layers: int, n_items: int,
                             max_seq_length: int) -> int:
    D, inner, N = hidden_size, inner_size, n_items
    embeddings = (N + 1) * D + max_seq_length * D + 2 * D
    block = 4 * (D * D + D) + (D * inner + inner) + (inner * D + D) + 4 * D
    return embeddings + n_layers * block + (D * D + D) + 2 * D + N
