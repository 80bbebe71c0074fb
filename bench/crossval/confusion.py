"""Where does a fold model put each true class of one test patient, and which input channel does it lean on?

For each model given (cross-validation fold models, ``.keras`` with their JSON), segments the
case as the app does (flip TTA, tuned region decoding, largest component) and prints the share of
each ground-truth label's voxels that went to each predicted label, then the WT / TC / ET Dice
with each input channel in turn set to the brain's mean (0 after z-scoring): a channel whose loss
raises a region's Dice misleads the model there. Last, the mean of each input channel (z-scored over
the brain, as the model sees it) inside each true label: it does not depend on the weights, so any
model with the same preprocessing gives it for any case.

    PYTHONPATH=. python bench/crossval/confusion.py --case Brats18_2013_11_1 \
        --models WORK/four+carvemix+val0_fold3.keras WORK/improved+and-coronal+val0_fold3.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from neuroinsight import io
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.inference import DEFAULT_POSTPROCESS, Segmentation, Segmenter
from neuroinsight.metrics import confusion_matrix, score_case
from neuroinsight.preprocessing import PreparedVolume, labels_to_classes, prepare_label

LABELS = (0, 1, 2, 4)


class ChannelAblated(Segmenter):
    """A segmenter whose input channel ``blank`` (if set) is replaced by the brain's mean."""

    blank: int | None = None

    def prepare(self, case: io.Case) -> PreparedVolume:
        prepared = super().prepare(case)
        if self.blank is not None:
            prepared.channels[self.blank] = 0
        return prepared


def segment(segmenter: Segmenter, case: io.Case) -> Segmentation:
    """As the app segments (``DEFAULT_POSTPROCESS``: flip TTA, tuned region decoding, largest component,
    and since session 43 small core islands made edema)."""
    return segmenter.segment(case, tta=True, attention=False, post=DEFAULT_POSTPROCESS)


def channel_means_text(segmenter: Segmenter, prepared: PreparedVolume, case: io.Case) -> list[str]:
    """Mean of each input channel inside each true label, on the network input ``prepared``."""
    classes = prepare_label(case.label, prepared, segmenter.preprocess.image_size)
    lines = []
    for label, cls in zip(LABELS, labels_to_classes(np.array(LABELS)), strict=True):
        inside = classes == cls
        means = " ".join(
            f"{m} {prepared.channels[c][inside].mean():+.2f}" for c, m in enumerate(segmenter.preprocess.modalities)
        )
        lines.append(f"  true label {label} ({np.count_nonzero(inside)} voxels at network size): {means}")
    return lines


def dice_text(labels: np.ndarray, case: io.Case) -> str:
    scores = score_case(labels, case.label, spacing_mm=case.spacing_mm)
    return " ".join(f"{region} {scores[region].dice:.3f}" for region in ("WT", "TC", "ET"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", required=True, help="case id in the data folder")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="fold models")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()

    case = io.load_case(args.data / args.case)
    for path in args.models:
        segmenter = ChannelAblated.from_path(path)
        segmentation = segment(segmenter, case)
        labels = segmentation.labels
        counts = confusion_matrix(labels, case.label, LABELS)
        print(f"{path.name} on {args.case}: share of each true label's voxels by predicted label")
        print("true \\ predicted " + " ".join(f"{label:>6d}" for label in LABELS))
        for label, row in zip(LABELS, counts, strict=True):
            print(f"{label:>16d} " + " ".join(f"{share:6.2f}" for share in row / max(row.sum(), 1)))
        print(f"  all channels: {dice_text(labels, case)}")
        for channel, modality in enumerate(segmenter.preprocess.modalities):
            segmenter.blank = channel
            print(f"  {modality} at the brain mean: {dice_text(segment(segmenter, case).labels, case)}")
        segmenter.blank = None
        print("\n".join(channel_means_text(segmenter, segmentation.prepared, case)))


if __name__ == "__main__":
    main()
