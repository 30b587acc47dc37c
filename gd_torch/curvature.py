"""The curvature of the loss, for any model: the loss Hessian's eigenvalues with respect to the
learnable parameters (what they say about the learning rate is gd_torch.stability's).

On a quadratic loss the largest eigenvalue bounds the learning rate (``lr < 2 / lambda_max``). For a
model that is not linear in its parameters the same number at the current parameters, the
*sharpness*, governs stability locally; full-batch descent tends to push it up to ``2 / lr`` and hover
there, the "edge of stability" (Cohen et al., ICLR 2021).

How it is computed: the loss over all points of the training split, in float64 (so that the
smallest eigenvalue of a badly scaled table still means something; a model of more than
``FLOAT64_UP_TO`` values in its own dtype), a chunk of points at a time.
With at most ``DENSE_UP_TO`` learnable values the whole Hessian is built (one backward pass per
value) and decomposed exactly; above that, Lanczos iteration on Hessian-vector products finds the
largest eigenvalue to a relative tolerance (PyHessian, Yao et al. 2020, does the same). Both use
double backward through plain autograd: torch.func's transforms would cost a second of set-up on
their first use in a process, more than a run of the article.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from gd_torch.loss import squared_error
from gd_torch.models import in_eval_mode

DENSE_UP_TO = 64  # learnable values: up to this many, the exact Hessian
CHUNK = 1 << 17  # points per pass (measured: 1.35 s for a dense 9-value Hessian over 10M points, 1.64 s at 1 << 18)
QUADRATIC_CHECK_POINTS = 1 << 16  # points the check for a quadratic loss looks at (spread through the data)
TOLERANCE = 1e-4  # relative, on the largest eigenvalue
MAX_ITERATIONS = 100  # Lanczos steps, each one Hessian-vector product over all points
FLOAT64_UP_TO = 1 << 20  # learnable values: above this many, Lanczos runs in the parameters' dtype
SINGULAR = 64 * torch.finfo(torch.float64).eps  # an eigenvalue this small relative to the largest is zero


Computed = torch.Tensor | tuple[torch.Tensor, ...]
# How a spectrum computes what it sums over the points: on one process as it is; under DDP each process
# computes on its own points and the results are summed (gd_torch.step_curvature.summed_over).
Summed = Callable[[Callable[[], Computed]], Computed]


def _here(compute: Callable[[], Computed]) -> Computed:
    return compute()


@dataclass
class Spectrum:
    """The loss Hessian's extreme eigenvalues at some parameters. ``min_eigenvalue``, ``hessian`` and
    ``gradient`` (float64, flattened over the learnable parameters) are there when the Hessian was
    built whole; ``quadratic`` says the loss is quadratic (the Hessian the same everywhere), so the
    values hold for the whole run, not only near these parameters."""

    max_eigenvalue: float
    min_eigenvalue: float | None = None
    quadratic: bool = False
    hessian: torch.Tensor | None = None
    gradient: torch.Tensor | None = None
    point: torch.Tensor | None = None  # the parameters they were taken at
    direction: torch.Tensor | None = None  # the top eigenvector: a warm start for the next estimate

    @property
    def condition_number(self) -> float | None:
        """lambda_max / lambda_min, for a quadratic loss; infinite when the Hessian is singular."""
        if not self.quadratic or self.min_eigenvalue is None:
            return None
        return math.inf if self.singular else self.max_eigenvalue / self.min_eigenvalue

    @property
    def singular(self) -> bool:
        """The smallest eigenvalue is zero to float64 rounding (or below): the loss is flat along some
        direction of the parameters."""
        return self.min_eigenvalue is not None and self.min_eigenvalue <= SINGULAR * abs(self.max_eigenvalue)


class LossOfParameters:
    """The loss as a function of the learnable parameters flattened into one vector, over the points a
    chunk at a time: what the Hessian is taken of. It is the points' squared errors over ``divisor``
    (gd_torch.step_curvature.StepScale says which divisor makes them the loss of one step). Frozen
    parameters and buffers keep their values. Everything floating point is in ``dtype`` (float64 unless
    the model is large: see ``_spectrum``)."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        divisor: float,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        named = dict(model.named_parameters())
        self.names = [name for name, p in named.items() if p.requires_grad]
        self.shapes = [named[name].shape for name in self.names]
        device = y.device
        self.dtype = dtype
        self.fixed = {  # in dtype where they are floating point (a step counter stays an integer)
            name: t.detach().to(device, dtype if t.is_floating_point() else t.dtype)
            for name, t in [*named.items(), *model.named_buffers()]
            if name not in self.names
        }
        self.start = torch.cat([named[name].detach().reshape(-1) for name in self.names]).to(device, dtype)
        self.model, self.x, self.y = model, x, y
        self.divisor = divisor

    @property
    def size(self) -> int:
        return self.start.numel()

    def chunk_loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        params, at = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            count = math.prod(shape)
            params[name] = flat[at : at + count].reshape(shape)
            at += count
        prediction = functional_call(self.model, {**self.fixed, **params}, (x.to(self.dtype),))
        return squared_error(prediction, y.to(self.dtype)) / self.divisor

    def chunks(self, chunk: int):
        for i in range(0, len(self.y), chunk):
            yield self.x[i : i + chunk], self.y[i : i + chunk]

    def _gradient(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the parameters as a graph leaf, the gradient of the chunk's loss with its own graph)."""
        leaf = flat.detach().requires_grad_()
        (gradient,) = torch.autograd.grad(self.chunk_loss(leaf, x, y), leaf, create_graph=True)
        return leaf, gradient

    def hessian_and_gradient(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total_h = torch.zeros(self.size, self.size, dtype=torch.float64, device=flat.device)
        total_g = torch.zeros(self.size, dtype=torch.float64, device=flat.device)
        for x, y in self.chunks(CHUNK):
            leaf, gradient = self._gradient(flat, x, y)
            for i in range(self.size):  # row i: the gradient of the gradient's i-th entry
                total_h[i] += _second_derivative(gradient[i], leaf, gradient, retain_graph=True)
            total_g += gradient.detach()
        return total_h, total_g

    def hessian_vector_product(self, flat: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(flat)
        for x, y in self.chunks(CHUNK):
            leaf, gradient = self._gradient(flat, x, y)
            total += _second_derivative(gradient @ vector, leaf, gradient)
        return total


def _second_derivative(
    output: torch.Tensor, leaf: torch.Tensor, gradient: torch.Tensor, retain_graph: bool = False
) -> torch.Tensor:
    """The derivative of (an entry or a product of) the gradient with respect to the parameters.

    Autograd has none when the gradient does not depend on the parameters. For a squared error that
    means a zero gradient too (its Hessian holds the gradient's own outer product); a gradient that
    is not zero and has no derivative went through an operation autograd differentiates only once
    (``once_differentiable``, some custom kernels), and its Hessian is not zero but unknown."""
    (derivative,) = torch.autograd.grad(output, leaf, retain_graph=retain_graph, allow_unused=True)
    if derivative is not None:
        return derivative
    if bool((gradient.detach() != 0).any()):
        raise RuntimeError(
            "the model's gradient cannot be differentiated again (an operation of the model is differentiated"
            " only once by autograd)"
        )
    return torch.zeros_like(leaf)


def spectrum(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    divisor: float,
    start: torch.Tensor | None = None,
    check_quadratic: bool = True,
    tolerance: float = TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
    summed: Summed | None = None,
) -> Spectrum:
    """The eigenvalues of the Hessian of the points' (x, y) squared errors over ``divisor`` (the loss of
    one step: gd_torch.step_curvature), at the model's current parameters.

    With ``summed`` (gd_torch.step_curvature's sum over the processes), (x, y) is this process's share
    of the points: every Hessian (or Hessian-vector product) is computed through it and summed over
    the processes, so each computes on its own points and all of them get the same values.

    The model is taken in eval mode (no dropout drawn: the same value every time, and the run's random
    streams untouched; batch norm on its running statistics), as the loss the run reports. ``start``
    warm-starts Lanczos (the previous top eigenvector). ``check_quadratic`` also builds the Hessian at
    a second, random point, over at most ``QUADRATIC_CHECK_POINTS`` points spread through the data, to
    see whether it is constant (a model linear in its parameters).
    """
    with in_eval_mode(model):
        return _spectrum(model, x, y, divisor, start, check_quadratic, tolerance, max_iterations, summed or _here)


def learnable_values(model: nn.Module) -> int:
    """How many values the Hessian is over: the learnable parameters' entries."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def loss_of_parameters(model: nn.Module, x: torch.Tensor, y: torch.Tensor, divisor: float) -> LossOfParameters:
    """The loss the spectrum is taken of, in its dtype: float64 (a badly scaled table's smallest eigenvalue
    still means something), except for a large model, whose top eigenvalue to 1e-4 needs no more than its
    own precision: half the memory and time."""
    parameter_dtype = next((p.dtype for p in model.parameters() if p.requires_grad), torch.float64)
    dtype = torch.float64 if learnable_values(model) <= FLOAT64_UP_TO else parameter_dtype
    return LossOfParameters(model, x, y, divisor, dtype)


def _spectrum(model, x, y, divisor, start, check_quadratic, tolerance, max_iterations, summed) -> Spectrum:
    loss = loss_of_parameters(model, x, y, divisor)
    dtype = loss.dtype
    if loss.size == 0:
        raise ValueError("the model has no learnable parameters")
    if loss.size > DENSE_UP_TO:
        if start is None:
            generator = torch.Generator(device="cpu").manual_seed(0)
            start = torch.randn(loss.size, generator=generator, dtype=torch.float64)

        def product(vector: torch.Tensor) -> torch.Tensor:
            return summed(lambda: loss.hessian_vector_product(loss.start, vector))

        top, direction = lanczos_top(product, start.to(loss.start), tolerance, max_iterations)
        return Spectrum(top, direction=direction)
    matrix, gradient = summed(lambda: loss.hessian_and_gradient(loss.start))
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    quadratic = False
    if check_quadratic:
        # The Hessian at a second, random point, against the first, over points spread through the data:
        # whether it depends on the parameters is a property of the model, which a sample shows as well
        # as every point, at a fraction of the cost on a large table.
        stride = max(1, len(y) // QUADRATIC_CHECK_POINTS)
        sample = LossOfParameters(model, x[::stride], y[::stride], divisor, dtype)
        generator = torch.Generator(device="cpu").manual_seed(0)
        shift = torch.randn(loss.size, generator=generator, dtype=torch.float64).to(matrix.device)
        # Both on the sample, always: under DDP every process must make the same collective calls, and
        # shards one point apart in size may fall on either side of a stride.
        away = sample.start + shift * (sample.start.abs().max() + 1)
        here = summed(lambda: sample.hessian_and_gradient(sample.start)[0])
        elsewhere = summed(lambda: sample.hessian_and_gradient(away)[0])
        scale = here.abs().max().clamp(min=1e-300)
        quadratic = bool(((elsewhere - here).abs().max() <= 1e-8 * scale).item())
    return Spectrum(
        max_eigenvalue=eigenvalues[-1].item(),
        min_eigenvalue=eigenvalues[0].item(),
        quadratic=quadratic,
        hessian=matrix,
        gradient=gradient,
        point=loss.start,
        direction=vectors[:, -1],
    )


BASIS_VALUES = 1 << 24  # values Lanczos keeps at most (128 MB in float64), and at least 3 vectors


def lanczos_top(
    product: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    tolerance: float = TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
) -> tuple[float, torch.Tensor | None]:
    """The largest eigenvalue of a symmetric operator given by ``product`` (and its eigenvector), by
    Lanczos iteration from ``start``. It stops when the top Ritz pair's residual is below ``tolerance``
    times the value, or the Krylov space is exhausted.

    Memory is bounded: the basis is one preallocated block of at most ``BASIS_VALUES / size`` vectors
    (3 at the least), and each new vector is reorthogonalized against those kept, the latest ones. A
    run that needs more iterations than that goes on with the vectors it keeps (the top eigenvalue
    still converges; copies of it may appear lower in the spectrum, which is not looked at) and
    returns no eigenvector (None), which would need the whole basis.
    """
    size = start.numel()
    steps = min(max_iterations, size)
    keep = min(steps, max(3, BASIS_VALUES // size))
    basis = torch.empty(keep, size, dtype=start.dtype, device=start.device)
    basis[0] = start / start.norm()
    alphas: list[float] = []
    betas: list[float] = []
    top, ritz = 0.0, torch.ones(1, 1, dtype=torch.float64)
    for i in range(steps):
        current = basis[i % keep]
        w = product(current)
        alphas.append(torch.dot(current, w).item())
        kept = basis[: min(i + 1, keep)]
        for _ in range(2):  # twice is enough: reorthogonalization against every vector kept
            w = w - kept.T @ (kept @ w)
        beta = w.norm().item()
        tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
        values, ritz = torch.linalg.eigh(tridiagonal)
        top = values[-1].item()
        if abs(beta * ritz[-1, -1].item()) <= tolerance * abs(top) or beta <= 1e-12 * max(abs(top), 1e-300):
            break
        if i + 1 == steps:
            break
        betas.append(beta)
        basis[(i + 1) % keep] = w / beta
    if len(alphas) > keep:
        return top, None
    return top, basis[: len(alphas)].T @ ritz[:, -1].to(basis)
