"""Patient-level cross-validation of training presets.

For each preset and each of ``n_folds`` grade-stratified folds: train on the other
patients (one of them held out for validation), segment the fold's patients in
native space and score them with :mod:`neuroinsight.metrics`. No patient is ever in
the test fold and the training set of the same run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from neuroinsight import io
from neuroinsight.data import split_cases
from neuroinsight.inference import NO_POSTPROCESS, PostprocessConfig, Segmenter, postprocess
from neuroinsight.metrics import score_case
from neuroinsight.pipeline import score_rows
from neuroinsight.training import PRESET_CONFIGS, TrainConfig, train

logger = logging.getLogger(__name__)


def run_crossval(
    data_dir: Path,
    presets: Sequence[str],
    out_dir: Path,
    *,
    n_folds: int = 4,
    seed: int = 0,
    overrides: dict | None = None,
    posts: dict[str, PostprocessConfig] | None = None,
    precision: str = "mixed_bfloat16",
    cache_dir: Path | None = None,
    folds: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, object]]:
    """Train and score every (preset, fold); return one row per (preset, post, case, region).

    Args:
        data_dir: BraTS data folder with ``grades.csv``.
        presets: Names from ``PRESET_CONFIGS``.
        out_dir: Where each fold's model is written (``<preset>_fold<k>.keras``).
        n_folds: Number of folds.
        seed: Seed of the fold assignment and of training.
        overrides: Fields replaced in every preset's ``TrainConfig`` (e.g. epochs).
        posts: Named post-processing variants scored on the same predictions.
        precision: Inference precision.
        cache_dir: Preprocessed-slice cache.
        folds: Run only these folds (to spread one cross-validation over several processes).
        progress: Called with a line of text after each fold.
    """
    grades = io.read_grades(data_dir)
    folders = {p.name: p for p in io.list_cases(data_dir)}
    posts = posts or {"none": NO_POSTPROCESS}
    rows: list[dict[str, object]] = []
    for preset in presets:
        config: TrainConfig = replace(PRESET_CONFIGS[preset], seed=seed, **(overrides or {}))
        for fold in folds if folds is not None else range(n_folds):
            split = split_cases(grades, n_val=1, seed=seed, n_folds=n_folds, fold=fold)
            model_path = out_dir / f"{preset}_fold{fold}.keras"
            train(
                config,
                [folders[c] for c in split["train"]],
                [folders[c] for c in split["val"]],
                model_path,
                cache_dir=cache_dir,
                verbose=0,
                extra_info={"split": split, "preset": preset, "fold": fold},
            )
            segmenter = Segmenter.from_path(model_path, precision=precision)
            for case_id in split["test"]:
                # Segment once; every post-processing variant starts from the same raw labels.
                case = io.load_case(folders[case_id])
                raw = segmenter.segment(case, attention=False).labels
                for post_name, post in posts.items():
                    labels = postprocess(raw, post, case.voxel_volume_ml)
                    scores = score_case(labels, case.label, spacing_mm=case.spacing_mm)
                    for row in score_rows(case.case_id, scores, segmenter.name):
                        row.update({"preset": preset, "fold": fold, "post": post_name})
                        rows.append(row)
            if progress is not None:
                progress(f"{preset} fold {fold}: test {', '.join(split['test'])}")
    return rows
