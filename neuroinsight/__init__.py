"""NeuroInsight: brain-tumor segmentation on multi-modal MRI with an Attention-UNet.

Modules are named by pipeline stage: ``io`` (NIfTI cases), ``preprocessing``,
``data`` (the training generator and the split), ``model``, ``training``,
``inference``, ``metrics``, ``grading``, ``report``, ``viz``, ``phantom``,
``history`` and ``cli``. Importing the package does not import TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"
