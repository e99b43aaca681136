"""Fitting a GaussianSet to a MaterialStack (Image-GS, paper defaults)."""
from .settings import DEFAULT_STEPS, FitSettings, gaussians_for_budget
from .trainer import FitResult, fit_stack

__all__ = ["DEFAULT_STEPS", "FitSettings", "FitResult", "fit_stack", "gaussians_for_budget"]
