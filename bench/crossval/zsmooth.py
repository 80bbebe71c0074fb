"""Does smoothing the network's probabilities along z (neighbouring slices) help? (It did not.)

Scores cross-validation fold models (``WORK/<recipe>_fold<k>.keras``) on their own test patients,
flip TTA, region decoding with halves, largest component, after a Gaussian filter of the
network-resolution probabilities along the slice axis with each sigma (0 = none).

    PYTHONPATH=. python bench/crossval/zsmooth.py --work runs/crossval --recipe four+robust
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from bench.crossval.scoring import fold_test_cases
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.inference import NO_POSTPROCESS, PostprocessConfig, postprocess
from neuroinsight.metrics import score_case
from neuroinsight.preprocessing import restore_labels

SIGMAS = (0.0, 0.5, 1.0, 1.5)
POST = PostprocessConfig(decoding="regions", largest_component_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder of the crossval fold models")
    parser.add_argument("--recipe", required=True, help="recipe name, e.g. four+robust")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--folds", type=int, default=4)
    args = parser.parse_args()

    dice: dict[float, list[list[float]]] = {sigma: [] for sigma in SIGMAS}
    models = [args.work / f"{args.recipe}_fold{fold}.keras" for fold in range(args.folds)]
    for _, segmenter, case in fold_test_cases(models, args.data):
        segmentation = segmenter.segment(case, tta=True, attention=False, post=NO_POSTPROCESS)
        probs = segmentation.network_probabilities
        for sigma in SIGMAS:
            smoothed = gaussian_filter1d(probs, sigma, axis=0, mode="nearest") if sigma else probs
            labels = postprocess(restore_labels(smoothed, segmentation.prepared, "regions"), POST, case.voxel_volume_ml)
            scores = score_case(labels, case.label, spacing_mm=case.spacing_mm)
            dice[sigma].append([scores[r].dice for r in ("WT", "TC", "ET")])
        print(f"fold {segmenter.info['fold']} {case.case_id}: done", flush=True)
    for sigma, values in dice.items():
        wt, tc, et = np.mean(values, axis=0)
        print(f"sigma {sigma}: WT {wt:.4f} TC {tc:.4f} ET {et:.4f}")


if __name__ == "__main__":
    main()
