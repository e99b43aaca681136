"""Fitting a GaussianSet to a MaterialStack (Image-GS, paper defaults)."""
from .settings import FitSettings, gaussians_for_budget
from .trainer import FitResult, fit_stack

__all__ = ["FitSettings", "FitResult", "fit_stack", "gaussians_for_budget"]
