"""Lightning callbacks; importing this package imports ``lightning`` (the top-level package does not)."""

from lightning_genmetrics.callbacks.generative_metrics import GenerativeMetricsCallback

__all__ = ["GenerativeMetricsCallback"]
