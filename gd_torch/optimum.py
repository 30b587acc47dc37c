"""Where gradient descent on a Line converges: the least-squares values of its learnable parameters,
the frozen ones held. (Which learning rates converge, for any model, is gd_torch.curvature's.)
"""

from collections.abc import Iterable

import torch

from gd_torch.models import Line


def least_squares(
    model: torch.nn.Module, chunks: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, float] | None:
    """The learnable parameters of a ``Line`` that minimise the squared error, the frozen ones held
    where they are: where gradient descent converges. None for other models or nothing learnable.

    From the normal equations, with the five sums accumulated in float64 over the chunks of points
    (``(x, y)`` on the data's device): no copy of the points, whatever their number.
    """
    if not isinstance(model, Line):
        return None
    sums = torch.zeros(5, dtype=torch.float64)
    for x, y in chunks:
        if x.dim() != 1:
            return None
        x, y = x.double(), y.double()
        sums += torch.stack([torch.tensor(float(x.numel()), device=x.device), x.sum(), (x * x).sum(), y.sum(),
                             (x * y).sum()]).cpu()  # fmt: skip
    n, sx, sxx, sy, sxy = sums.tolist()
    if n == 0:
        return None
    learn_slope, learn_intercept = model.slope.requires_grad, model.intercept.requires_grad
    slope, intercept = model.slope.item(), model.intercept.item()
    if learn_slope and learn_intercept:
        determinant = sxx * n - sx * sx
        return {"slope": (sxy * n - sx * sy) / determinant, "intercept": (sxx * sy - sx * sxy) / determinant}
    if learn_intercept:
        return {"intercept": (sy - slope * sx) / n}
    if learn_slope:
        return {"slope": (sxy - intercept * sx) / sxx}
    return None
