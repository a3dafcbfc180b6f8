"""Fine-tuning: train each new task from the previous weights with no penalty, the forgetting every other method is
measured against (Goodfellow et al. 2013, "An empirical investigation of catastrophic forgetting in gradient-based
neural networks", arXiv:1312.6211)."""

from cllab.methods import Method
from cllab.schema import zero

METHOD = Method("none", "fine-tune", "#d62728", omega=None, lambda_spec=zero("fine-tuning has no penalty"), order=10)
