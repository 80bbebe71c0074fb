"""Does averaging over small rotations or zooms at test time help beyond the left-right flip?

Scores cross-validation fold models on their own test patients (the split stored in each model's
JSON) with the shipped inference (flip TTA, tuned region decoding, largest component), once per
variant: ``flip`` averages the slice and its mirror, as the app does; ``rot`` adds the slice
rotated by -10 and +10 degrees (each also mirrored, so 6 network passes), ``zoom`` adds it zoomed
by 0.9 and 1.1, ``rotzoom`` both (10 passes). Each warped prediction is warped back before the
average. The four-modality recipes train with rotations up to 10 degrees and zoom up to 10 %, so
these views are ones they have seen; the two-channel recipes train with flips only.

Rows are in the cross-validation CSV format with the variant in the ``tta`` column, so
``crossval-table`` compares them (``--variant RECIPE rot largest+regions-tuned --against RECIPE
flip largest+regions-tuned``).

    PYTHONPATH=. python bench/crossval/tta.py --models WORK/four+carvemix+val0_fold*.keras \
        --out bench/crossval/tta_four_carvemix_val0.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from bench.crossval.scoring import fold_test_cases, variant_rows
from neuroinsight.augmentation import rotation_matrix
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.crossval import POST_VARIANTS
from neuroinsight.inference import Segmenter
from neuroinsight.pipeline import rows_to_csv

#: (angle in degrees, zoom) views averaged besides the slice itself, per variant.
VARIANTS: dict[str, tuple[tuple[float, float], ...]] = {
    "flip": (),
    "rot": ((-10.0, 1.0), (10.0, 1.0)),
    "zoom": ((0.0, 0.9), (0.0, 1.1)),
    "rotzoom": ((-10.0, 1.0), (10.0, 1.0), (0.0, 0.9), (0.0, 1.1)),
}
#: The shipped decoding and post-processing, by its name in the cross-validation tables.
POST = "largest+regions-tuned"


def warp(batch: NDArray[np.float32], angle_deg: float, zoom: float, *, inverse: bool = False) -> NDArray[np.float32]:
    """Rotate and zoom every slice of ``(B, S, S, C)`` about its centre (or undo it), as training does."""
    size = batch.shape[1]
    matrix = rotation_matrix((size, size), angle_deg, zoom)
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
    # Images: outside the field of view is background (0). Probabilities: the nearest edge value.
    border = cv2.BORDER_REPLICATE if inverse else cv2.BORDER_CONSTANT
    out = np.empty_like(batch)
    for i, image in enumerate(batch):
        out[i] = cv2.warpAffine(image, matrix, (size, size), flags=flags, borderMode=border).reshape(image.shape)
    return out


class ViewAveraged(Segmenter):
    """A segmenter whose network probabilities are averaged over warped views of each slice."""

    views: tuple[tuple[float, float], ...] = ()

    def predict_slices(self, slices: NDArray[np.float32], *, attention: bool = False) -> list[NDArray[np.float32]]:
        outputs = super().predict_slices(slices, attention=attention)
        if not self.views:
            return outputs
        total = outputs[0].copy()
        for angle, zoom in self.views:
            probs = super().predict_slices(warp(slices, angle, zoom))[0]
            total += warp(probs, angle, zoom, inverse=True)
        outputs[0] = total / (1 + len(self.views))
        return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="fold models (.keras with JSON)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    rows: list[dict[str, object]] = []
    for _, segmenter, case in fold_test_cases(args.models, args.data, load=ViewAveraged.from_path):
        for variant in args.variants:
            segmenter.views = VARIANTS[variant]
            segmentation = segmenter.segment(case, tta=True, attention=False, post=POST_VARIANTS[POST])
            seconds = round(segmentation.seconds, 1)
            rows += variant_rows(case, segmentation.labels, segmenter, tta=variant, post=POST, seconds=seconds)
        # Written after every patient, so a killed run keeps what it scored.
        args.out.write_text(rows_to_csv(rows, ("preset", "tta", "post", "fold")))


if __name__ == "__main__":
    main()
