"""Which region-decoding thresholds, chosen by cross-validation, give the best Dice?

The nested region decoding (``neuroinsight.preprocessing.decode_labels``) labels whole tumor
where P(tumor) > a, core where the core's share of the tumor probability > b, enhancing where
its share of the core probability > c. (a, b, c) = (0.5, 0.5, 0.5) compares P(tumor) with
P(background), P(core) with P(edema) and P(ET) with P(NCR).

Scores cross-validation fold models already trained by ``python -m neuroinsight crossval``
(``WORK/<recipe>_fold<k>.keras``) on their own test patients, flip TTA, largest whole-tumor
component (the shipped defaults), for every (a, b, c) of a grid, through the package's own
``restore_labels`` and ``postprocess``. Then, for each fold, it picks the triple with the best
mean Dice (WT, TC, ET averaged) on the *other* folds' patients and scores it on the fold's own:
that nested estimate is the accuracy to expect from thresholds tuned this way, not the best
triple's in-sample score (also printed).

Rows (``preset``, ``fold``, ``case``, ``thresholds``, ``region``, ``dice``) go to ``--out``.

    PYTHONPATH=. python bench/crossval/thresholds.py --work runs/crossval \
        --recipes four+robust improved --out bench/crossval/thresholds.csv
"""

from __future__ import annotations

import argparse
import csv
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuroinsight import io
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.inference import NO_POSTPROCESS, PostprocessConfig, Segmenter, postprocess, read_model_info
from neuroinsight.metrics import BRATS_REGIONS, compute_dice, region_mask
from neuroinsight.preprocessing import HALF, restore_labels

WHOLE = (0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
CORE = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
ENHANCING = (0.4, 0.5, 0.6)
REGIONS = ("WT", "TC", "ET")


def score_grid(segmenter: Segmenter, case: io.Case, grid: Sequence[tuple[float, float, float]]) -> dict:
    """``{thresholds: (WT, TC, ET) Dice}`` of one case, decoded from one set of probabilities."""
    segmentation = segmenter.segment(case, tta=True, attention=False, post=NO_POSTPROCESS)
    probs, prepared = segmentation.network_probabilities, segmentation.prepared
    truth = {r: region_mask(case.label, BRATS_REGIONS[r]) for r in REGIONS}
    scores = {}
    for thresholds in grid:
        post = PostprocessConfig(decoding="regions", region_thresholds=thresholds, largest_component_only=True)
        labels = postprocess(restore_labels(probs, prepared, "regions", thresholds), post, case.voxel_volume_ml)
        scores[thresholds] = tuple(compute_dice(region_mask(labels, BRATS_REGIONS[r]), truth[r]) for r in REGIONS)
    return scores


def mean_dice(scores: dict, cases: Sequence, thresholds: tuple[float, float, float]) -> np.ndarray:
    return np.mean([scores[c][thresholds] for c in cases], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder of the crossval fold models")
    parser.add_argument("--recipes", nargs="+", required=True, help="recipe names, e.g. four+robust improved")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    grid = list(itertools.product(WHOLE, CORE, ENHANCING))
    rows = []
    for recipe in args.recipes:
        scores = {}  # (fold, case) -> {thresholds: (WT, TC, ET)}
        for fold in range(args.folds):
            model = args.work / f"{recipe}_fold{fold}.keras"
            segmenter = Segmenter.from_path(model)
            for case_id in read_model_info(model)["split"]["test"]:
                scores[fold, case_id] = score_grid(segmenter, io.load_case(args.data / case_id), grid)
                print(f"{recipe} fold {fold} {case_id}: done", flush=True)
        for (fold, case_id), by_thresholds in scores.items():
            for thresholds, dice in by_thresholds.items():
                for region, value in zip(REGIONS, dice, strict=True):
                    rows.append([recipe, fold, case_id, " ".join(f"{t:g}" for t in thresholds), region, f"{value:.6g}"])

        cases = list(scores)
        best = max(grid, key=lambda t: mean_dice(scores, cases, t).mean())
        nested = []
        picks = []
        for fold in range(args.folds):
            inner = [c for c in cases if c[0] != fold]
            pick = max(grid, key=lambda t: mean_dice(scores, inner, t).mean())
            picks.append(pick)
            nested += [scores[c][pick] for c in cases if c[0] == fold]
        half = np.array([scores[c][HALF] for c in cases])
        nested_arr = np.array(nested)
        better = [int((nested_arr[:, i] > half[:, i]).sum()) for i in range(3)]
        worse = [int((nested_arr[:, i] < half[:, i]).sum()) for i in range(3)]
        print(f"\n{recipe}, {len(cases)} patients, mean Dice WT / TC / ET:")
        print(f"  halves {HALF}:                    {np.round(half.mean(0), 3)}")
        print(f"  nested (picked per fold {picks}): {np.round(nested_arr.mean(0), 3)}")
        print(f"    better / worse than halves on {better} / {worse} patients")
        print(f"  best on all patients {best} (in-sample): {np.round(mean_dice(scores, cases, best), 3)}")

    with args.out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["preset", "fold", "case", "thresholds", "region", "dice"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
