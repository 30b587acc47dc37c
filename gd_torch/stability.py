"""Which learning rates make gradient descent on a Line converge.

For the squared-error loss of a line the Hessian H is constant, so plain gradient descent converges
exactly when ``learning_rate < 2 / largest eigenvalue of H``. With ``s = 1`` for ``reduction="sum"``
and ``s = N`` for ``"mean"``, restricted to the learnable parameters:

    d2L/db2 = 2 N / s      d2L/dm2 = 2 sum(x^2) / s      d2L/dm db = 2 sum(x) / s

For the article's intercept alone with the sum this is ``1 / N``: 0.2 for its five points.
"""

import torch

from gd_torch.models import Line


def largest_stable_learning_rate(model: torch.nn.Module, x: torch.Tensor, reduction: str) -> float | None:
    """``2 / lambda_max(H)`` for a ``Line`` on inputs ``x``; None for other models or nothing learnable."""
    if not isinstance(model, Line):
        return None
    x = x.detach().to(torch.float64).reshape(-1)
    n = x.numel()
    scale = n if reduction == "mean" else 1
    full = 2 / scale * torch.tensor([[x.square().sum().item(), x.sum().item()], [x.sum().item(), float(n)]])
    learnable = [i for i, p in enumerate((model.slope, model.intercept)) if p.requires_grad]
    if not learnable:
        return None
    hessian = full[learnable][:, learnable]
    return 2 / torch.linalg.eigvalsh(hessian).max().item()
