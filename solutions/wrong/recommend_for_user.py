"""Known-wrong: the seen items are not removed, so the user is recommended movies they have already watched."""
import torch

from minibert4rec.masking import inference_inputs


def recommend_for_user(model, history: list[int], k: int) -> list[int]:
    model.eval()
    inputs = inference_inputs([history], max_len=model.config.max_seq_length, mask_id=model.mask_id)
    with torch.no_grad():
        scores = model.predict(inputs)[0]
    return torch.topk(scores, k).indices.tolist()
