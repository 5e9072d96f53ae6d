"""Solution: the model's k best items that the user has not seen, best first."""
import torch

from minibert4rec.masking import inference_inputs


def recommend_for_user(model, history: list[int], k: int) -> list[int]:
    model.eval()
    inputs = inference_inputs([history], max_len=model.config.max_seq_length, mask_id=model.mask_id)  # (1, L)
    with torch.no_grad():
        scores = model.predict(inputs)[0].clone()  # (N+1,): one score per item, column 0 is padding
    scores[torch.tensor(sorted(set(history)))] = -torch.inf  # never recommend what the user has seen
    return torch.topk(scores, k).indices.tolist()
