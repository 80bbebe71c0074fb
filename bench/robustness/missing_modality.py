"""Segment held-out patients with one modality missing, using the four-modality fold models.

A model trained with modality dropout (``--augment moddrop``) saw slices in which one modality
was blanked to 0, the brain's z-scored mean; :class:`~neuroinsight.inference.Segmenter` gives such
a model that blank channel for a modality the upload lacks. This measures what that costs: each
cross-validation fold model segments its own test patients with all four modalities and with
each one left out in turn (flip TTA, the default decoding and post-processing), in native space.

    PYTHONPATH=. python bench/robustness/missing_modality.py \\
        runs/crossval/four+moddrop+val0_fold{0,1,2,3}.keras \\
        --out bench/robustness/missing_modality_moddrop.csv

Store the result without T1ce in the no-contrast model's JSON (the app shows it and warns with it):

    PYTHONPATH=. python bench/robustness/missing_modality.py \
        --summary bench/robustness/missing_modality_moddrop.csv --record models/attention_unet_nocontrast.keras

Fold models trained without modality dropout, for comparison (``--force-blank`` gives them the
blank channel too):

    PYTHONPATH=. python bench/robustness/missing_modality.py --force-blank \\
        runs/crossval/four+robust+val0_fold{0,1}.keras --out bench/robustness/missing_modality_robust_folds01.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from neuroinsight import io
from neuroinsight.config import resolve_settings
from neuroinsight.crossval import DEFAULT_POST, read_rows, summary_table, variant_summary
from neuroinsight.inference import DEFAULT_POSTPROCESS, Segmenter, update_model_info
from neuroinsight.metrics import score_case
from neuroinsight.pipeline import rows_to_csv, score_rows

#: One table line per recipe and missing modality.
GROUP_BY = ("preset", "missing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, help="fold models; each JSON names its test patients")
    parser.add_argument("--data", type=Path, default=resolve_settings().data_dir, help="BraTS data")
    parser.add_argument("--out", type=Path, help="CSV of one row per model, patient, missing modality, region")
    parser.add_argument("--force-blank", action="store_true", help="blank missing modalities for any model")
    parser.add_argument(
        "--cases", nargs="+", help="segment these patients instead of each model's test patients (e.g. its own)"
    )
    parser.add_argument("--summary", nargs="+", type=Path, help="only summarise these CSVs of earlier runs")
    parser.add_argument(
        "--record", type=Path, metavar="MODEL", help="with --summary: store the result without T1ce in MODEL's JSON"
    )
    args = parser.parse_args()
    if args.summary:
        rows = [r for r in read_rows(args.summary) if not args.cases or r["case"] in args.cases]
        print(summary_table(rows, group_by=GROUP_BY))
        if args.record:
            recipes = sorted({r["preset"] for r in rows})
            if len(recipes) != 1:
                parser.error(f"--record needs the rows of one recipe, got {', '.join(recipes)}")
            summary = variant_summary(rows, (recipes[0], "t1ce"), columns=GROUP_BY)
            posts = {r.get("post") for r in rows}
            if len(posts) == 1 and None not in posts:  # CSVs written before the column carry no name
                summary["post"] = posts.pop()
            summary["command"] = " ".join(["PYTHONPATH=. python", *sys.argv])
            update_model_info(args.record, "without_t1ce", summary)
            print(f"Recorded in {args.record.with_suffix('.json')}")
        return
    if not args.models or args.out is None:
        parser.error("give fold models and --out (or --summary CSV)")

    folders = {p.name: p for p in io.list_cases(args.data)}
    rows: list[dict[str, object]] = []
    for path in args.models:
        segmenter = Segmenter.from_path(path)
        segmenter.blank_missing = segmenter.blank_missing or args.force_blank
        recipe = segmenter.info.get("preset", path.stem)  # crossval names its fold models' recipe
        for case_id in args.cases or segmenter.info["split"]["test"]:
            case = io.load_case(folders[case_id])
            for missing in ("none", *io.MODALITIES):
                images = {m: v for m, v in case.images.items() if m != missing}
                result = segmenter.segment(
                    dataclasses.replace(case, images=images), tta=True, attention=False, post=DEFAULT_POSTPROCESS
                )
                scores = score_case(result.labels, case.label, spacing_mm=case.spacing_mm)
                rows += score_rows(
                    case_id,
                    scores,
                    path.name,
                    preset=recipe,
                    fold=segmenter.info.get("fold"),
                    missing=missing,
                    post=DEFAULT_POST,
                )
                wt = scores["WT"].dice
                print(f"{path.name} {case_id} missing={missing}: WT {wt:.3f} ET {scores['ET'].dice:.3f}", flush=True)
        args.out.write_text(rows_to_csv(rows, extra_columns=["preset"]))
    print(summary_table(rows, group_by=GROUP_BY))


if __name__ == "__main__":
    main()
