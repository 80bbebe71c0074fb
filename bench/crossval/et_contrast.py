"""Does the labelled enhancing tumor enhance? T1ce contrast inside each patient's ET label vs ET Dice.

The networks can only learn "enhancing tumor" from what the images show: tumor tissue brighter on
T1ce than on T1 and than the rest of the brain. This measures, for every case of the data folder,
the T1ce intensity inside the ground-truth ET label on the scale the networks see (z-score over
the brain mask, the union of non-zero voxels of all modalities, as ``prepare_volume`` does) and
the T1ce - T1 difference there, and puts them beside the cross-validated ET Dice of each recipe
(flip TTA, tuned region decoding, largest component).

    PYTHONPATH=. python bench/crossval/et_contrast.py \
        --cv bench/crossval/cv_improved_val0.csv bench/crossval/cv_four_robust_val0.csv \
        --out bench/crossval/et_contrast.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from neuroinsight import io
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.crossval import read_rows
from neuroinsight.preprocessing import brain_mask, zscore

VARIANT = ("flip", "largest+regions-tuned")
#: A voxel counts as bright on T1ce above this z-score (one brain standard deviation).
BRIGHT_Z = 1.0


def et_dice(paths: list[Path]) -> dict[str, dict[str, float]]:
    """Recipe -> case -> cross-validated ET Dice (flip TTA, tuned regions, largest component)."""
    out: dict[str, dict[str, float]] = {}
    for row in read_rows(paths):
        if row["region"] == "ET" and (row.get("tta"), row["post"]) == VARIANT:
            out.setdefault(row["preset"], {})[row["case"]] = float(row["dice"])
    return out


def contrast(case: io.Case) -> dict[str, float]:
    """T1ce statistics inside the case's ET label, in brain z-scores."""
    assert case.label is not None, f"{case.case_id} has no ground truth"
    mask = brain_mask(case.images)
    t1ce, t1 = zscore(case.images["t1ce"], mask), zscore(case.images["t1"], mask)
    et = case.label == 4
    inside = t1ce[et]
    q25, q50, q75 = np.percentile(inside, [25, 50, 75])
    return {
        "et_ml": float(et.sum()) * case.voxel_volume_ml,
        "t1ce_z_q25": float(q25),
        "t1ce_z_median": float(q50),
        "t1ce_z_q75": float(q75),
        "bright_fraction": float(np.mean(inside > BRIGHT_Z)),
        "t1ce_minus_t1_median": float(np.median(inside - t1[et])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--cv", type=Path, nargs="+", required=True, help="cross-validation CSVs")
    parser.add_argument("--out", type=Path, required=True, help="CSV, one row per case")
    args = parser.parse_args()

    dice = et_dice(args.cv)
    grades = io.read_grades(args.data)
    rows = []
    for folder in io.list_cases(args.data):
        case = io.load_case(folder)
        row = {"case": case.case_id, "grade": grades.get(case.case_id, ""), **contrast(case)}
        row.update({f"et_dice[{recipe}]": scores.get(case.case_id, float("nan")) for recipe, scores in dice.items()})
        rows.append(row)
        print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()} for row in rows)

    median = [row["t1ce_z_median"] for row in rows]
    for recipe in dice:
        scores = [row[f"et_dice[{recipe}]"] for row in rows]
        rho, p = spearmanr(median, scores)
        print(f"{recipe}: Spearman rho(median T1ce z in ET, ET Dice) = {rho:.2f} (p = {p:.3f}, {len(rows)} cases)")


if __name__ == "__main__":
    main()
