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

Rows (``preset``, ``fold``, ``case``, ``thresholds``, ``region``, ``dice``) go to ``--out``;
``--summarise`` prints the summary of an existing CSV again without scoring. ``--nested-rows``
writes the nested estimate in ``crossval``'s columns (post ``largest+regions-nested``), for
``python -m neuroinsight crossval-table ... --against``.

    PYTHONPATH=. python bench/crossval/thresholds.py --work runs/crossval \
        --recipes four+robust improved --out bench/crossval/thresholds.csv
    PYTHONPATH=. python bench/crossval/thresholds.py --summarise --out bench/crossval/thresholds.csv
"""

from __future__ import annotations

import argparse
import csv
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.crossval.scoring import fold_test_cases
from neuroinsight import io
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.inference import NO_POSTPROCESS, PostprocessConfig, Segmenter, postprocess
from neuroinsight.metrics import BRATS_REGIONS, compute_dice, region_mask
from neuroinsight.preprocessing import HALF, restore_labels

WHOLE = (0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
CORE = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
ENHANCING = (0.4, 0.5, 0.6)
REGIONS = ("WT", "TC", "ET")
NESTED = "largest+regions-nested"


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


def summarise(scores: dict, folds: int) -> dict:
    """Print halves, the nested cross-validated pick and the in-sample best of one recipe.

    Returns the nested estimate per patient, ``{(fold, case): (WT, TC, ET)}``.
    """
    cases = list(scores)
    grid = list(next(iter(scores.values())))
    by_case, picks = {}, []
    for fold in range(folds):
        inner = [c for c in cases if c[0] != fold]
        pick = max(grid, key=lambda t: mean_dice(scores, inner, t).mean())
        picks.append(pick)
        by_case |= {c: scores[c][pick] for c in cases if c[0] == fold}
    half, nested = np.array([scores[c][HALF] for c in cases]), np.array([by_case[c] for c in cases])
    best = max(grid, key=lambda t: mean_dice(scores, cases, t).mean())
    print(f"  halves {HALF}: {np.round(half.mean(0), 3)}")
    print(f"  nested (picked per fold {picks}): {np.round(nested.mean(0), 3)}")
    print(f"    better / worse than halves on {(nested > half).sum(0)} / {(nested < half).sum(0)} patients")
    print(f"  best on all patients {best} (in-sample): {np.round(mean_dice(scores, cases, best), 3)}")
    return by_case


def read_scores(path: Path) -> dict[str, dict]:
    """``{recipe: {(fold, case): {thresholds: (WT, TC, ET)}}}`` from a CSV this script wrote."""
    table: dict = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            thresholds = tuple(float(t) for t in row["thresholds"].split())
            cell = table.setdefault(row["preset"], {}).setdefault((int(row["fold"]), row["case"]), {})
            cell.setdefault(thresholds, {})[row["region"]] = float(row["dice"])
    return {
        recipe: {case: {t: tuple(d[r] for r in REGIONS) for t, d in by_t.items()} for case, by_t in cases.items()}
        for recipe, cases in table.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder of the crossval fold models")
    parser.add_argument("--recipes", nargs="+", help="recipe names, e.g. four+robust improved")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True, help="CSV written (or, with --summarise, read)")
    parser.add_argument("--summarise", action="store_true", help="only summarise an existing --out CSV")
    parser.add_argument(
        "--nested-rows", type=Path, help=f"also write the nested estimate as crossval rows (post {NESTED})"
    )
    args = parser.parse_args()

    if not args.summarise:
        grid = list(itertools.product(WHOLE, CORE, ENHANCING))
        rows = []
        for recipe in args.recipes:
            models = [args.work / f"{recipe}_fold{fold}.keras" for fold in range(args.folds)]
            for _, segmenter, case in fold_test_cases(models, args.data):
                fold = segmenter.info["fold"]
                for thresholds, dice in score_grid(segmenter, case, grid).items():
                    for region, value in zip(REGIONS, dice, strict=True):
                        name = " ".join(f"{t:g}" for t in thresholds)
                        rows.append([recipe, fold, case.case_id, name, region, f"{value:.6g}"])
                print(f"{recipe} fold {fold} {case.case_id}: done", flush=True)
        with args.out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["preset", "fold", "case", "thresholds", "region", "dice"])
            writer.writerows(rows)

    scores = read_scores(args.out)
    nested_rows = []
    for recipe, by_case in scores.items():
        print(f"\n{recipe}, {len(by_case)} patients, mean Dice WT / TC / ET:")
        for (fold, case), dice in summarise(by_case, args.folds).items():
            for region, value in zip(REGIONS, dice, strict=True):
                nested_rows.append([recipe, "flip", NESTED, fold, case, region, f"{value:.6g}"])
    if args.nested_rows:
        # The columns `crossval-table` reads, so the nested estimate compares patient by patient with --against.
        with args.nested_rows.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["preset", "tta", "post", "fold", "case", "region", "dice"])
            writer.writerows(nested_rows)
    # One default for every model: the triple with the best mean Dice over all recipes' patients.
    grid = list(next(iter(next(iter(scores.values())).values())))
    pooled = {t: np.mean([mean_dice(s, list(s), t).mean() for s in scores.values()]) for t in grid}
    print("\nbest mean Dice over the recipes (WT, TC, ET and recipes averaged):")
    for t in sorted(grid, key=lambda t: -pooled[t])[:6]:
        print(f"  {t}: {pooled[t]:.4f}")
    print(f"  {HALF}: {pooled[HALF]:.4f}")


if __name__ == "__main__":
    main()
