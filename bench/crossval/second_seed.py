"""How much of a cross-validation result is the training seed? Retrain one fold with another seed.

Trains the ``improved`` recipe (the shipped two-channel settings: 30 epochs, batch 16,
``mixed_bfloat16``, final epoch) on one fold of the fixed seed-0 fold assignment, with a
different *training* seed, and scores its test patients with flip TTA and the shipped
decoding. ``python -m neuroinsight crossval --seed`` would change the folds as well.

    PYTHONPATH=. python bench/crossval/second_seed.py --fold 1 --n-val 0 --seed 1 --work runs/seed1
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from neuroinsight import io
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.data import split_cases
from neuroinsight.inference import DEFAULT_POSTPROCESS, Segmenter
from neuroinsight.metrics import score_case
from neuroinsight.pipeline import rows_to_csv, score_rows
from neuroinsight.training import PRESET_CONFIGS, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--n-val", type=int, default=1, help="validation patients per fold (0: all train)")
    parser.add_argument("--seed", type=int, default=1, help="training seed (the folds stay those of seed 0)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--work", type=Path, required=True, help="folder for the model, its cache and the CSV")
    args = parser.parse_args()

    grades, folders = io.read_grades(args.data), {p.name: p for p in io.list_cases(args.data)}
    split = split_cases(grades, n_val=args.n_val, seed=0, n_folds=4, fold=args.fold)
    config = replace(
        PRESET_CONFIGS["improved"], seed=args.seed, epochs=30, batch_size=16, precision="mixed_bfloat16", select="last"
    )
    name = f"improved{'+val0' if args.n_val == 0 else ''}_seed{args.seed}_fold{args.fold}"
    model = args.work / f"{name}.keras"
    if not model.exists():
        train(
            config,
            [folders[c] for c in split["train"]],
            [folders[c] for c in split["val"]],
            model,
            cache_dir=args.work / f"cache_{name}",
            verbose=0,
            extra_info={"split": split, "preset": name, "fold": args.fold},
        )
    segmenter, rows = Segmenter.from_path(model), []
    for case_id in split["test"]:
        case = io.load_case(folders[case_id])
        labels = segmenter.segment(case, tta=True, attention=False, post=DEFAULT_POSTPROCESS).labels
        for row in score_rows(case_id, score_case(labels, case.label, spacing_mm=case.spacing_mm), name):
            row.update({"preset": name, "tta": "flip", "post": "largest+regions-tuned", "fold": args.fold})
            rows.append(row)
    (args.work / f"{name}.csv").write_text(rows_to_csv(rows, extra_columns=("preset", "tta", "post", "fold")))


if __name__ == "__main__":
    main()
