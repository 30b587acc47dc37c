"""Where gradient descent on a Line converges, and for which learning rates.

For the squared-error loss of a line the Hessian H is constant, so plain gradient descent converges
exactly when ``learning_rate < 2 / lambda`` with ``lambda`` the largest eigenvalue of H. With ``s = 1``
for ``reduction="sum"`` and ``s = N`` for ``"mean"``, restricted to the learnable parameters:

    d2L/db2 = 2 N / s      d2L/dm2 = 2 sum(x^2) / s      d2L/dm db = 2 sum(x) / s

For the article's intercept alone with the sum this is ``1 / N``: 0.2 for its five points.
``torch.optim.SGD``'s options move the bound: ``weight_decay`` adds itself to every eigenvalue,
momentum ``beta`` multiplies the bound by ``1 + beta``, and Nesterov momentum by
``(1 + beta) / (1 + 2 beta)``.
"""

import torch

from gd_torch.models import Line


def largest_stable_learning_rate(
    model: torch.nn.Module,
    x: torch.Tensor,
    reduction: str,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> float | None:
    """The learning rate below which SGD on a ``Line`` converges; None for other models."""
    if not isinstance(model, Line) or x.dim() != 1:
        return None
    learnable = [i for i, p in enumerate((model.slope, model.intercept)) if p.requires_grad]
    if not learnable:
        return None
    x = x.detach().to(torch.float64)
    n = x.numel()
    scale = n if reduction == "mean" else 1
    full = 2 / scale * torch.tensor([[x.square().sum().item(), x.sum().item()], [x.sum().item(), float(n)]])
    largest = torch.linalg.eigvalsh(full[learnable][:, learnable]).max().item() + weight_decay
    if nesterov:
        return 2 * (1 + momentum) / ((1 + 2 * momentum) * largest)
    return 2 * (1 + momentum) / largest


def least_squares(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float] | None:
    """The learnable parameters of a ``Line`` that minimise the squared error, the frozen ones held
    where they are: where gradient descent converges. None for other models or nothing learnable.

    From the normal equations, with the five sums accumulated in float64 on the data's device: no
    copy of the points, whatever their number.
    """
    if not isinstance(model, Line) or x.dim() != 1:
        return None
    learn_slope, learn_intercept = model.slope.requires_grad, model.intercept.requires_grad
    n = float(x.numel())
    sx, sxx, sy, sxy = (t.sum(dtype=torch.float64).item() for t in (x, x * x, y, x * y))
    slope, intercept = model.slope.item(), model.intercept.item()
    if learn_slope and learn_intercept:
        determinant = sxx * n - sx * sx
        return {"slope": (sxy * n - sx * sy) / determinant, "intercept": (sxx * sy - sx * sxy) / determinant}
    if learn_intercept:
        return {"intercept": (sy - slope * sx) / n}
    if learn_slope:
        return {"slope": (sxy - intercept * sx) / sxx}
    return None
