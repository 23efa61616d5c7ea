"""Gradient scaling by a running RMS per tensor: one float of state per trainable tensor.

A plain gradient step on a few examples trains slowly where gradients are
small, and the learning rate that suits one layer overshoots another.
Dividing each tensor's gradient by the running root mean square of its
gradients makes the learning rate a step size in weight units for every
layer. This is Adam's second moment kept per tensor instead of per weight,
so the training state stays the accumulator byte per weight.
"""
import numpy as np

EPSILON = 1e-12


class RmsScaling:
    """The running mean of one tensor's squared gradients, with bias correction."""

    def __init__(self, decay: float = 0.999):
        self.decay = decay
        self.mean_square = 0.0
        self.steps = 0

    nbytes = 4          # the float32 that a C implementation keeps per tensor

    def scale(self, grad: np.ndarray) -> np.ndarray:
        """Update the running mean with `grad`; return grad / running RMS."""
        square = float(np.mean(np.square(grad, dtype=np.float64))) + EPSILON
        self.steps += 1
        self.mean_square = self.decay * self.mean_square + (1 - self.decay) * square
        estimate = self.mean_square / (1 - self.decay ** self.steps)
        return (grad / np.sqrt(estimate)).astype(np.float32)
