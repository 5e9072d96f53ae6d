"""Notebook 05: one AdamW update by hand (decoupled weight decay, two moments, bias correction)."""

import torch


def adamw_step(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
               step: int, lr: float, weight_decay: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    param = param * (1 - lr * weight_decay)  # decoupled weight decay: not part of the gradient
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad  # running mean of the gradient
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad  # running mean of its square
    m_hat = exp_avg / (1 - beta1**step)  # both start at 0: undo that bias
    v_hat = exp_avg_sq / (1 - beta2**step)
    return param - lr * m_hat / (v_hat.sqrt() + eps), exp_avg, exp_avg_sq
