"""cllab: catastrophic forgetting on split MNIST and the penalties that prevent it (the methods: cllab.methods)."""

__version__ = "0.1.0"
