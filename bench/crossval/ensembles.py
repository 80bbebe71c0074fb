"""Do fold-wise ensembles of recipes, or region-based decoding, beat one model with argmax?

Scores cross-validation fold models already trained by ``python -m neuroinsight crossval``
(``WORK/<recipe>_fold<k>.keras``) on their own test patients, with flip TTA and the largest
whole-tumor component kept (the shipped default):

- each recipe alone and each ensemble of two or more recipes (mean of their probabilities on the
  native grid, so recipes of different slicing planes combine too; all recipes of a fold must
  share its test patients, which the fixed fold assignment guarantees);
- both decodings of the same probabilities (``neuroinsight.preprocessing.decode_labels``):
  ``argmax`` over the four classes and ``regions``, which decides the nested BraTS regions from
  summed probabilities (Isensee et al., BraTS 2018).

Rows have the cross-validation CSV columns (``preset`` = recipes joined by `` & ``, ``post`` =
``largest``, ``largest+regions`` or ``largest+regions-tuned``: the decoding thresholds at halves
or tuned), so ``python -m neuroinsight crossval-table OUT`` summarises it.

    PYTHONPATH=. python bench/crossval/ensembles.py --work runs/crossval \
        --recipes four+robust improved four --out bench/crossval/ensembles.csv
    # an axial and a coronal model of one recipe, on the folds both exist for
    PYTHONPATH=. python bench/crossval/ensembles.py --work runs/crossval --only-folds 0 1 \
        --recipes four+robust+val0 four+robust+coronal+val0 --out bench/crossval/ensembles_planes_folds01.csv
    # one network read in two planes (multi-view inference): RECIPE@PLANE slices the case in PLANE
    PYTHONPATH=. python bench/crossval/ensembles.py --work runs/crossval \
        --recipes improved+and-coronal+val0 improved+and-coronal+val0@coronal --out views.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

from neuroinsight import io
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.crossval import POST_VARIANTS, training_sites
from neuroinsight.inference import Segmenter, postprocess, read_model_info
from neuroinsight.metrics import score_case
from neuroinsight.pipeline import rows_to_csv, score_rows
from neuroinsight.preprocessing import decode_labels

POSTS = ("largest", "largest+regions", "largest+regions-tuned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder of the crossval fold models")
    parser.add_argument("--recipes", nargs="+", required=True, help="recipe names, e.g. four+robust improved")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--only-folds", type=int, nargs="+", help="score only these folds")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    combos = [c for n in range(1, len(args.recipes) + 1) for c in itertools.combinations(args.recipes, n)]
    rows = []
    for fold in args.only_folds or range(args.folds):
        paths = {r: args.work / f"{r.split('@')[0]}_fold{fold}.keras" for r in args.recipes}
        tests = {r: tuple(read_model_info(p)["split"]["test"]) for r, p in paths.items()}
        if len(set(tests.values())) != 1:
            raise SystemExit(f"fold {fold}: the recipes' test patients differ: {tests}")
        segmenters = {r: in_plane(Segmenter.from_path(p), r) for r, p in paths.items()}
        sites = training_sites(read_model_info(paths[args.recipes[0]])["split"])
        for case_id in tests[args.recipes[0]]:
            case = io.load_case(args.data / case_id)
            probs = {}
            for recipe, segmenter in segmenters.items():
                segmentation = segmenter.segment(case, tta=True, attention=False)
                probs[recipe], brain = segmentation.probabilities, segmentation.brain
            for combo in combos:
                mean = sum(probs[r] for r in combo) / len(combo)
                for post_name in POSTS:
                    post = POST_VARIANTS[post_name]
                    labels = decode_labels(mean, post.decoding, post.region_thresholds) * brain
                    labels = postprocess(labels, post, case.voxel_volume_ml)
                    scores = score_case(labels, case.label, spacing_mm=case.spacing_mm)
                    name = " & ".join(combo)
                    rows += score_rows(
                        case_id, scores, name, preset=name, tta="flip", post=post_name, fold=fold, train_sites=sites
                    )
            print(f"fold {fold} {case_id}: done", flush=True)
    args.out.write_text(rows_to_csv(rows, extra_columns=("preset", "tta", "post", "fold")))


def in_plane(segmenter: Segmenter, recipe: str) -> Segmenter:
    """The segmenter of ``RECIPE@PLANE``: the same network, reading slices of ``PLANE``."""
    if "@" not in recipe:
        return segmenter
    plane = recipe.split("@")[1]
    preprocess = dataclasses.replace(segmenter.preprocess, plane=plane)
    return Segmenter(segmenter.model, preprocess, name=recipe, info=segmenter.info)


if __name__ == "__main__":
    main()
