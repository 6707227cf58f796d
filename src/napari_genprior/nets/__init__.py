"""Networks as plain ``torch.nn.Module`` s, one family a file."""

from .skip import SkipNet

__all__ = ["SkipNet"]
