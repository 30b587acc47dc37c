"""Where gradient descent on a Line converges: the least-squares values of its learnable parameters,
the frozen ones held. (Which learning rates converge, for any model, is gd_torch.stability's.)
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
        determinant = sxx * n - sx * sx  # n^2 times the variance of x
        # float32 x agree to ~1e-7 of their size: a spread below that is rounding, and the slope noise
        if determinant <= NO_SPREAD * sxx * n:
            where = "one point" if n == 1 else f"all {int(n):,} points at x = {sx / n:g}"
            raise NoOptimum(
                f"x has no spread ({where}): every line through the points' mean fits them as well, so slope and"
                " intercept have no single optimum"
            )
        return {"slope": (sxy * n - sx * sy) / determinant, "intercept": (sxx * sy - sx * sxy) / determinant}
    if learn_intercept:
        return {"intercept": (sy - slope * sx) / n}
    if learn_slope:
        if sxx == 0:
            raise NoOptimum("every x is 0: the slope does not change the loss, so it has no single optimum")
        return {"slope": (sxy - intercept * sx) / sxx}
    return None


NO_SPREAD = 1e-12  # variance / mean square of x below which x has no spread (float32 x agree to ~1e-7)


class NoOptimum(ValueError):
    """The least-squares problem has no single solution (x without spread); the message says why."""
