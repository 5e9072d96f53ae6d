"""Known-wrong: only the diagonal of the Jacobian (the term every entry of a row shares is missing)."""
import torch


def softmax_backward(probs: torch.Tensor, dprobs: torch.Tensor) -> torch.Tensor:
    return probs * dprobs
