"""Metrics and the comparison report."""
