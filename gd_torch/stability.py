"""What the loss Hessian's eigenvalues (gd_torch.curvature) say about the learning rate: the largest
stable one for SGD (with momentum, Nesterov and weight decay), the steps a quadratic loss takes to
converge, and the line and record a run gives them.

Gradient descent on a quadratic loss converges exactly when ``learning_rate < 2 / lambda_max``: along
the Hessian's eigenvector of eigenvalue lambda, each step multiplies the error by ``1 - lr * lambda``.
(The article's ``b_k - 1 = 9 * 0.9**k`` is that, with lambda = 10 and lr = 0.01.)
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gd_torch.curvature import Spectrum

if TYPE_CHECKING:
    from gd_torch.step_curvature import StepScale


@dataclass
class Optimizer:
    """What the stability bound depends on: plain SGD's settings, or another optimizer's name."""

    name: str = "SGD"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    @property
    def has_bound(self) -> bool:
        return self.name == "SGD"


def stable_learning_rate(max_eigenvalue: float, optimizer: Optimizer) -> float | None:
    """The largest learning rate at which the optimizer is stable on a quadratic with this largest
    eigenvalue; None where no bound is known (Adam and every optimizer but SGD), or where the loss
    curves down (lambda_max <= 0: no step is too long along it).

    For ``torch.optim.SGD`` on one eigen-direction of eigenvalue lambda (weight decay adds itself to
    it), the update is a linear recurrence whose 2x2 matrix must have both eigenvalues inside the unit
    circle (the Jury conditions). Plain: ``lr < 2 / lambda``. Heavy-ball momentum beta (PyTorch's
    ``buf = beta buf + g; p -= lr buf``): ``lr < 2 (1 + beta) / lambda``. Nesterov (``p -= lr (g + beta
    buf)``): ``lr < 2 (1 + beta) / ((1 + 2 beta) lambda)``.
    """
    curvature = max_eigenvalue + optimizer.weight_decay
    if not optimizer.has_bound or curvature <= 0:
        return None
    beta = optimizer.momentum
    if optimizer.nesterov:
        return 2 * (1 + beta) / ((1 + 2 * beta) * curvature)
    return 2 * (1 + beta) / curvature


def predicted_steps(
    spectrum: Spectrum, learning_rate: float, optimizer: Optimizer, tolerance: float, budget: int = 100_000
) -> tuple[int, bool] | None:
    """How many steps of SGD on this quadratic loss the step-size rule (``Convergence(tolerance)``: the
    largest change of any parameter in one step below ``tolerance``) takes to stop: ``(steps, exact)``.

    The linear recurrence of the descent (parameters and momentum buffer) is run in float64 from the
    initial gradient, ``budget`` steps at the most; past that the count is extrapolated from the
    slowest direction's contraction per step (``exact`` False). None without a bound, or if the
    recurrence does not contract at this learning rate (it diverges).
    """
    if not (spectrum.quadratic and spectrum.hessian is not None and optimizer.has_bound) or tolerance <= 0:
        return None
    h = spectrum.hessian.cpu() + optimizer.weight_decay * torch.eye(len(spectrum.hessian), dtype=torch.float64)
    # The gradient SGD uses at the start (weight decay adds decay times the parameters); it moves by H
    # times each step, the loss being quadratic.
    g = spectrum.gradient.cpu() + optimizer.weight_decay * spectrum.point.cpu()
    beta, lr = optimizer.momentum, learning_rate
    rate = contraction(torch.linalg.eigvalsh(h), lr, beta, optimizer.nesterov)
    if rate >= 1:
        return None
    buffer = torch.zeros_like(g)
    size = 0.0
    for step in range(budget):
        buffer = beta * buffer + g if beta else g
        change = -lr * (g + beta * buffer if optimizer.nesterov else buffer)
        size = change.abs().max().item()
        if size < tolerance:
            return step + 1, True
        g = g + h @ change
    if size == 0.0:
        return budget, True
    return budget + math.ceil(math.log(tolerance / size) / math.log(rate)), False


def contraction(eigenvalues: torch.Tensor, lr: float, beta: float, nesterov: bool) -> float:
    """The largest factor by which one step of SGD shrinks the error along any eigen-direction: the
    spectral radius of the slowest direction's 2x2 recurrence (``|1 - lr lambda|`` without momentum)."""
    worst = 0.0
    for lam in eigenvalues.tolist():
        if nesterov:
            trace, determinant = 1 + beta - lr * lam * (1 + beta), beta * (1 - lr * lam)
        else:
            trace, determinant = 1 + beta - lr * lam, beta
        roots = torch.linalg.eigvals(torch.tensor([[trace, -determinant], [1.0, 0.0]], dtype=torch.float64))
        worst = max(worst, roots.abs().max().item())
    return worst


def stability_limit(learning_rate: float, optimizer: Optimizer) -> float | None:
    """The largest sharpness (top Hessian eigenvalue) at which SGD is stable at this learning rate:
    ``2 / lr`` for plain SGD, the inverse of :func:`stable_learning_rate` in general."""
    if not optimizer.has_bound:
        return None
    beta = optimizer.momentum
    factor = 2 * (1 + beta) / (1 + 2 * beta) if optimizer.nesterov else 2 * (1 + beta)
    return factor / learning_rate - optimizer.weight_decay


@dataclass
class Stability:
    """What the curvature at the initial parameters says about a run's learning rate."""

    spectrum: Spectrum
    optimizer: Optimizer
    learning_rate: float  # the one in use (chosen here with learning_rate: auto)
    auto: bool = False
    scale: "StepScale | None" = None  # which loss it is of (the step's, measured on which points)

    @property
    def predicts_the_run(self) -> bool:
        """Whether the Hessian is the whole loss every step differentiates (full batch, every point
        measured), so the descent's path can be computed from it."""
        return self.scale is None or self.scale.whole

    @property
    def stable_learning_rate(self) -> float | None:
        return stable_learning_rate(self.spectrum.max_eigenvalue, self.optimizer)

    def record(self) -> dict:
        """For ``summary.json``: ``max_eigenvalue``, ``stable_learning_rate`` (null: no bound known),
        and for a quadratic loss ``min_eigenvalue`` and ``condition_number``."""
        record = {
            "max_eigenvalue": self.spectrum.max_eigenvalue,
            "stable_learning_rate": self.stable_learning_rate,
            "quadratic": self.spectrum.quadratic,
        }
        if self.scale is not None:
            record |= self.scale.record()
        if self.spectrum.quadratic:
            record["min_eigenvalue"] = self.spectrum.min_eigenvalue
            record["condition_number"] = self.spectrum.condition_number
        return record

    def line(self) -> str:
        """The console's line: ``Stable for learning_rate < X; using Y``, and what X comes from."""
        where = "" if self.spectrum.quadratic else ", near the initial parameters"
        of = self.scale.words() if self.scale is not None else ""
        eigenvalue = f"largest Hessian eigenvalue {self.spectrum.max_eigenvalue:.6g}{where}{of}"
        using = f"using {self.learning_rate:.6g}"
        if self.auto:
            using, eigenvalue = f"{using}, half of it", f"learning_rate: auto; {eigenvalue}"
        bound = self.stable_learning_rate
        if bound is None:
            why = f"no bound is known for {self.optimizer.name}" if not self.optimizer.has_bound else "no bound"
            return f"Stability: {why}; {using} ({eigenvalue})"
        line = f"Stable for learning_rate < {bound:.6g}; {using} ({eigenvalue})"
        kappa = self.spectrum.condition_number
        if kappa is not None and len(self.spectrum.hessian) > 1:
            low, high = self.spectrum.min_eigenvalue, self.spectrum.max_eigenvalue
            if self.spectrum.singular:
                line += (
                    f"\nCondition number inf: the Hessian is singular (eigenvalues from {low:.3g}, zero to rounding,"
                    f" to {high:.3g}): the loss is flat along some direction of the parameters (fewer distinct"
                    " points than parameters, one-hot categories beside a bias, or a feature that repeats others),"
                    " which descent leaves as it starts"
                )
            else:
                line += f"\nCondition number {kappa:.3g} (Hessian eigenvalues from {low:.3g} to {high:.3g})"
        return line
