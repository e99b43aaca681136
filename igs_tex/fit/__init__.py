"""Fitting a GaussianSet to a MaterialStack (Image-GS, paper defaults)."""

from ..budget import auto_tile, gaussians_for_budget  # noqa: F401  (callers not yet moved to budget)
from .settings import DEFAULT_STEPS, FitSettings
from .trainer import FitResult, fit_stack

__all__ = ["DEFAULT_STEPS", "FitSettings", "FitResult", "fit_stack"]
