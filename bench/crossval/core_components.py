"""Do stray tumor-core islands inside the whole tumor cost Dice?

Keeping the largest whole-tumor component leaves the core (NCR + ET) inside it free to fall apart
into islands: tumor-core HD95 (11-14 mm) was twice the whole tumor's under cross-validation, and
the two-stage cascade, which shrank the core, cut it to 11 mm without a better overlap. This
scores, on cross-validation fold models and their own test patients, the segmentation as shipped
until session 43 (flip TTA, tuned region decoding, largest component) and the same label map with
core islands smaller than a fraction of the largest one relabelled edema
(``PostprocessConfig.core_island_fraction``, applied by ``neuroinsight.inference.postprocess``).
The whole tumor is never changed.

Rows are in the cross-validation CSV format with the variant in the ``post`` column, so
``crossval-table`` compares them (``--variant RECIPE flip largest+regions-tuned+core0.3 --against
RECIPE flip largest+regions-tuned``).

    PYTHONPATH=. python bench/crossval/core_components.py --models WORK/improved+flips-carvemix+val0_fold*.keras \
        --out bench/crossval/core_components_improved_flips_carvemix_val0.csv
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from bench.crossval.scoring import fold_test_cases, variant_rows
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.crossval import POST_VARIANTS
from neuroinsight.inference import NO_POSTPROCESS, postprocess
from neuroinsight.pipeline import rows_to_csv

#: The post-processing shipped until session 43, by its name in the cross-validation tables.
POST = "largest+regions-tuned"
#: Variant -> fraction of the largest core island below which an island becomes edema (1: all
#: but the largest). Applied to ``POST``'s label map, so each variant is ``POST`` plus this step.
FRACTIONS: dict[str, float] = {
    POST: 0.0,
    f"{POST}+core0.1": 0.1,
    f"{POST}+core0.3": 0.3,
    f"{POST}+core0.5": 0.5,
    f"{POST}+core-largest": 1.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="fold models (.keras with JSON)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    rows: list[dict[str, object]] = []
    for _, segmenter, case in fold_test_cases(args.models, args.data):
        segmentation = segmenter.segment(case, tta=True, attention=False, post=POST_VARIANTS[POST])
        for variant, fraction in FRACTIONS.items():
            step = replace(NO_POSTPROCESS, core_island_fraction=fraction)
            labels = postprocess(segmentation.labels, step, case.voxel_volume_ml)
            rows += variant_rows(case, labels, segmenter, tta="flip", post=variant)
        # Written after every patient, so a killed run keeps what it scored.
        args.out.write_text(rows_to_csv(rows, ("preset", "tta", "post", "fold")))


if __name__ == "__main__":
    main()
