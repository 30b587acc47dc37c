"""Every logged value of a run in memory: a Lightning logger that keeps what it is given, for
``gd_torch.fit``'s ``Run.history`` (the same values at the same steps the other loggers get)."""

from collections import defaultdict

from lightning.pytorch.loggers import Logger


class InMemoryLogger(Logger):
    """``history``: tag -> [(step, value), ...], in the order they were logged."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for tag, value in metrics.items():
            self.history[tag].append((step, float(value)))

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # the hyperparameters are in the run's config and summary
