"""The MNIST demo."""
