"""Differentiable forward models (degradations) and noise models. Pure torch + numpy."""
