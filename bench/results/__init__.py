"""Scoring a run directory, result tables, and the regression check."""
