"""Fitting a GaussianSet to a MaterialStack (Image-GS, paper defaults)."""
from .settings import DEFAULT_STEPS, FitSettings, auto_tile, gaussians_for_budget
from .trainer import FitResult, fit_stack

__all__ = ["DEFAULT_STEPS", "FitSettings", "FitResult", "auto_tile", "fit_stack", "gaussians_for_budget"]
