"""posezoo: a unified top-down keypoint toolkit for PyTorch."""

__version__ = "0.1.0"
