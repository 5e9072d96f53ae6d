"""Notebook 04: BERT4Rec's parameter count by hand (n_heads does not matter: heads split D, they add nothing)."""


def bert4rec_parameter_count(hidden_size: int, inner_size: int, n_layers: int, n_items: int,
                             max_seq_length: int) -> int:
    D, inner, N = hidden_size, inner_size, n_items

    def linear(a: int, b: int) -> int:
        return a * b + b  # weight + bias

    layer_norm = 2 * D  # scale + shift
    embeddings = (N + 2) * D + max_seq_length * D + layer_norm  # items (+ pad, [mask]), positions, LayerNorm
    block = 4 * linear(D, D) + linear(D, inner) + linear(inner, D) + 2 * layer_norm  # q k v out, FFN, 2 LayerNorms
    output = linear(D, D) + layer_norm + N  # dense + LayerNorm + one bias per item (the item matrix is shared)
    return embeddings + n_layers * block + output
