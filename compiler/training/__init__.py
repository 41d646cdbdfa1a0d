"""Training, evaluation and shipping of a spec's runtime module (``netc train``, ``netc eval``).

``data`` reads the datasets into memory and augments batches; ``loop`` is the
training loop (one process, or one rank of a torchrun DDP job); ``checkpoint``
writes and reads ``last.pt`` / ``best.pt`` atomically, in a format
``torch.load(weights_only=True)`` reads; ``evaluate`` is top-1/top-5, the
confusion matrix and batch-norm recalibration; ``distributed`` sets up the
process group and launches torchrun's launcher. ``python -m compiler.training``
is ``netc train`` (torchrun's ``-m`` entry).
"""

from __future__ import annotations


class TrainingError(Exception):
    """A bad data path, option or checkpoint: one line for the user, no traceback."""
