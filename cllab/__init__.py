"""cllab: catastrophic forgetting on split MNIST and the penalties that prevent it (fine-tune, L2, EWC)."""

__version__ = "0.1.0"
