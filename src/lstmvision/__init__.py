"""lstmvision: PyTorch library for recurrent neural networks in computer vision."""

__version__ = "0.1.0"
