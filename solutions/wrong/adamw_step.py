"""Known-wrong: Adam with L2 regularisation (weight decay added to the gradient), not AdamW's decoupled decay."""

import torch


def adamw_step(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
               step: int, lr: float, weight_decay: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    grad = grad + weight_decay * param
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
    m_hat = exp_avg / (1 - beta1**step)
    v_hat = exp_avg_sq / (1 - beta2**step)
    return param - lr * m_hat / (v_hat.sqrt() + eps), exp_avg, exp_avg_sq
