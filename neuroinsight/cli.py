"""``python -m neuroinsight <command>``: thin wrappers over the package's API.

Each command has ``_add_<cmd>`` (its arguments) and ``_run_<cmd>`` (one API call
and printing). User errors (:class:`InputError`) print one line to stderr and
exit with code 2; anything unexpected exits 1 with a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from neuroinsight.config import DEFAULT_PRECISION, Settings, resolve_settings
from neuroinsight.errors import InputError

logger = logging.getLogger(__name__)

#: ``training.LOSSES``, ``augmentation.PRESETS``, ``model.NORMS``, ``preprocessing.DECODINGS``,
#: ``PLANE_AXES``, ``crossval.CROSSVAL_EPOCHS`` and ``CROSSVAL_BATCH_SIZE``, spelled out so that
#: building the parser does not import Keras (tests/test_cli.py checks that they agree).
LOSS_CHOICES = ("ce", "ce_dice", "ce_region_dice", "wce_dice")
AUGMENT_CHOICES = (
    "none",
    "flips",
    "robust",
    "strong",
    "lowres",
    "moddrop",
    "elastic",
    "carvemix",
    "flips-carvemix",
    "geometric",
)
NORM_CHOICES = ("none", "batch", "instance")
DECODE_CHOICES = ("argmax", "regions")
PLANE_CHOICES = ("axial", "coronal")
CROSSVAL_EPOCHS = 30
CROSSVAL_BATCH_SIZE = 16


def _settings(args: argparse.Namespace) -> Settings:
    return resolve_settings(home=args.home, data_dir=getattr(args, "data_dir", None))


def _text_progress(enabled: bool) -> Callable[[int, int], None] | None:
    if not enabled:
        return None

    def report(done: int, total: int) -> None:
        print(f"\r  {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return report


# --------------------------------------------------------------------------- validate


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a case and print its summary")
    p.add_argument("path", type=Path, help="BraTS case folder, .zip of one, or 4-D Decathlon NIfTI")
    p.add_argument("--label", type=Path, help="ground truth for a 4-D Decathlon image [optional]")
    p.set_defaults(run=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    import numpy as np

    from neuroinsight import io

    case = io.load_case(args.path, label_path=args.label)
    sx, sy, sz = case.spacing_mm
    print(f"case {case.case_id}")
    print(f"  files        {', '.join(case.source_files)}")
    print(f"  shape        {case.shape} (canonical RAS)")
    print(f"  spacing      {sx:.3g} x {sy:.3g} x {sz:.3g} mm")
    print(f"  orientation  {case.source_orientation} (source)")
    for name, volume in case.images.items():
        low, high, mean = float(volume.min()), float(volume.max()), float(volume.mean())
        print(f"  {name:<6} range {low:10.4g} .. {high:10.4g}   mean {mean:.4g}")
    if case.label is None:
        print("  labels       none")
    else:
        values, counts = np.unique(case.label, return_counts=True)
        listing = ", ".join(f"{int(v)}: {int(c)}" for v, c in zip(values, counts, strict=True))
        print(f"  labels       {listing} voxels")
    if not case.has_contrast:
        print("  note         no T1ce (no contrast): segmenting gives the whole tumor only")
    return 0


# --------------------------------------------------------------------------- phantom


def _add_phantom(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("phantom", help="write a synthetic BraTS-like case folder")
    p.add_argument("out_dir", type=Path, help="folder to write <case>_<modality>.nii.gz into")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--shape", type=int, nargs=3, default=(240, 240, 155), metavar=("X", "Y", "Z"))
    p.add_argument("--tumor-radius", type=float, default=22.0, help="tumor radius in mm (default 22)")
    p.add_argument("--no-tumor", action="store_true", help="a healthy brain")
    p.set_defaults(run=_run_phantom)


def _run_phantom(args: argparse.Namespace) -> int:
    from neuroinsight import io, phantom

    case = phantom.make_case(
        seed=args.seed, shape=tuple(args.shape), tumor_radius_mm=0.0 if args.no_tumor else args.tumor_radius
    )
    folder = io.save_case(case, args.out_dir)
    print(f"wrote {case.case_id} to {folder}")
    return 0


# --------------------------------------------------------------------------- train


def _add_recipe_arguments(p: argparse.ArgumentParser, *, named: bool) -> None:
    """Settings of a training recipe that train and crossval both take.

    ``named``: crossval names its results and fold models after the settings that differ from
    the preset (``P+robust``, ``P+ctx1``, ...), so its help says how instead of the default.
    """
    for flag, kwargs, what, default, name in (
        ("--augment", {"choices": AUGMENT_CHOICES}, "augmentation preset", "default: the preset's", "P+AUGMENT"),
        ("--norm", {"choices": NORM_CHOICES}, "normalization after each convolution", "seed: none", "P+NORM"),
        ("--context", {"type": int}, "2.5-D input: neighbouring slices per side", "default 0", "P+ctxN"),
        ("--image-size", {"type": int}, "network input side in pixels, a multiple of 8", "default 128", "P+sN"),
        ("--plane", {"choices": PLANE_CHOICES}, "slicing plane", "default axial, as the seed", "P+coronal"),
        ("--filters", {"type": int, "nargs": "+"}, "encoder filters per level", "seed: 32 64 128", "P+f48-96-192"),
        ("--bottleneck", {"type": int}, "bottleneck filters", "seed: 256", "P+b384"),
        (
            "--extra-planes",
            {"choices": PLANE_CHOICES, "nargs": "+"},
            "also train on these planes' slices, epochs as long as without (the network predicts in --plane)",
            "default none",
            "P+and-coronal",
        ),
        (
            "--deep-supervision",
            {"action": "store_true"},
            "also train auxiliary outputs of decoder levels 2 and 3 (the saved network is unchanged)",
            "default off",
            "P+ds",
        ),
    ):
        p.add_argument(flag, **kwargs, help=f"{what} ({'results ' + name if named else default})")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an Attention-UNet on a BraTS data folder")
    p.add_argument("--data", dest="data_dir", type=Path, help="BraTS data folder [default: NEUROINSIGHT_DATA]")
    p.add_argument("--out", type=Path, required=True, help="model path, e.g. models/attention_unet.keras [REQUIRED]")
    p.add_argument(
        "--preset", choices=("four", "improved", "seed"), default="seed", help="starting settings (default seed)"
    )
    p.add_argument("--epochs", type=int, help="maximum epochs (preset: 25)")
    p.add_argument("--batch-size", type=int, help="slices per step (seed: 2)")
    p.add_argument("--lr", type=float, help="Adam learning rate (seed: 1e-3)")
    _add_training_precision(p)
    p.add_argument(
        "--loss",
        choices=LOSS_CHOICES,
        help="ce (seed), ce_dice (+ soft Dice per class), ce_region_dice (+ soft Dice per BraTS region)"
        " or wce_dice (class-weighted ce + soft Dice per class)",
    )
    _add_recipe_arguments(p, named=False)
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 8)")
    p.add_argument(
        "--select", choices=("best", "last"), help="keep the best-validation epoch or the last (default best)"
    )
    p.add_argument("--steps-per-epoch", type=int, help="cap on steps per epoch (smoke runs)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the stratified patient split (default 0)")
    p.add_argument("--n-val", type=int, default=1, help="validation patients (default 1)")
    p.add_argument("--n-test", type=int, default=2, help="test patients, never trained on (default 2)")
    p.add_argument("--folds", type=int, help="cross-validation: number of folds (with --fold)")
    p.add_argument("--fold", type=int, help="cross-validation: which fold is the test fold (0-based)")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last epoch")
    p.add_argument(
        "--strategy", choices=("auto", "none", "mirrored"), default="auto", help="distribution (default auto)"
    )
    p.set_defaults(run=_run_train)


def _add_training_precision(p: argparse.ArgumentParser, scoring: str = "") -> None:
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
        default="auto",
        help="training dtype policy (default auto: mixed_float16 on a GPU, mixed_bfloat16 on a CPU with "
        f"native bfloat16 (AMX, AVX-512 BF16), float32 on other CPUs, where bfloat16 trains about 10x slower){scoring}",
    )


def _training_precision(name: str) -> str:
    """``name``, or for ``auto`` the fastest policy on this machine (printed, and recorded in the model's JSON)."""
    if name != "auto":
        return name
    from neuroinsight.training import fast_training_precision

    chosen = fast_training_precision()
    print(f"precision auto: {chosen}")
    return chosen


def _run_train(args: argparse.Namespace) -> int:
    from neuroinsight import io
    from neuroinsight.data import split_cases
    from neuroinsight.training import PRESET_CONFIGS, train

    settings = _settings(args)
    config = PRESET_CONFIGS[args.preset]
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "precision": _training_precision(args.precision),
        "loss": args.loss,
        "augment": args.augment,
        "norm": args.norm,
        "seed": args.seed,
        "patience": args.patience,
        "select": args.select,
        "steps_per_epoch": args.steps_per_epoch,
        "filters": tuple(args.filters) if args.filters else None,
        "bottleneck": args.bottleneck,
        "deep_supervision": args.deep_supervision or None,
        "extra_planes": tuple(args.extra_planes) if args.extra_planes else None,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    config = config.with_input(context=args.context, image_size=args.image_size, plane=args.plane)
    grades = io.read_grades(settings.data_dir)
    folders = {p.name: p for p in io.list_cases(settings.data_dir)}
    if not grades:
        grades = {name: "unknown" for name in folders}
    split = split_cases(
        grades, n_val=args.n_val, n_test=args.n_test, seed=args.split_seed, n_folds=args.folds, fold=args.fold
    )
    for part in ("train", "val", "test"):
        print(f"{part:<5} {len(split[part]):>2}: {' '.join(split[part])}")
    result = train(
        config,
        [folders[c] for c in split["train"]],
        [folders[c] for c in split["val"]],
        args.out,
        cache_dir=settings.cache_dir,
        resume=args.resume,
        strategy=args.strategy,
        verbose=0 if args.no_progress else "auto",
        extra_info={"split": split, "data_dir": str(settings.data_dir), "preset": args.preset},
    )
    print(f"trained {result.epochs_run} epochs in {result.seconds:.0f} s -> {result.model_path}")
    return 0


# --------------------------------------------------------------------------- segment


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="model file [default: chosen from NEUROINSIGHT_MODELS by modalities]")
    p.add_argument("--models-dir", type=Path, help="folder of shipped models [default: NEUROINSIGHT_MODELS or models/]")
    p.add_argument(
        "--precision", choices=("float32", "mixed_bfloat16"), help=f"inference precision [default: {DEFAULT_PRECISION}]"
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="with all four modalities, average both shipped models (better WT and TC under cross-validation, "
        "twice the network time; see the model card)",
    )
    p.add_argument(
        "--all-components",
        action="store_true",
        help="keep every tumor component and every core island (default: only the largest tumor component, "
        "and within it core islands of at least 30 %% of the largest; see the model card)",
    )
    p.add_argument("--min-component-ml", type=float, default=0.0, help="drop tumor components below this volume (cm3)")
    p.add_argument("--min-et-ml", type=float, default=0.0, help="relabel ET below this total volume as NCR (cm3)")
    p.add_argument(
        "--decode",
        choices=DECODE_CHOICES,
        help="labels from nested BraTS regions (default, see the model card) or the most probable class",
    )
    p.add_argument(
        "--region-thresholds",
        type=float,
        nargs=3,
        metavar=("WT", "TC", "ET"),
        help="region decoding: P(tumor), core share of the tumor, enhancing share of the core above these "
        "[default: the cross-validated ones in the model card]",
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=True,  # better TC and ET under cross-validation (model card); --no-tta halves the network time
        help="left-right flip test-time augmentation (default: on)",
    )


def _segmenter_factory(args: argparse.Namespace):
    """A function case -> Segmenter honouring --model / --models-dir / --ensemble, loading each model once."""
    from neuroinsight.inference import Segmenter, choose_models

    if args.model and args.ensemble:
        raise InputError("--ensemble combines the shipped models; it cannot be used with --model.")
    settings = resolve_settings(home=args.home, models_dir=args.models_dir)
    loaded: dict[Path, Segmenter] = {}

    def load(path: Path) -> Segmenter:
        if path not in loaded:
            loaded[path] = Segmenter.from_path(path, precision=args.precision or DEFAULT_PRECISION)
        return loaded[path]

    def segmenter_for(case) -> Segmenter:
        if args.model:
            return load(args.model)
        paths = choose_models(settings.models_dir, case.modalities, ensemble=args.ensemble)
        if args.ensemble and len(paths) == 1:
            print(
                f"note: --ensemble needs all four modalities; {case.case_id} has {', '.join(case.modalities)}, "
                f"so --ensemble ran {paths[0].name} alone",
                file=sys.stderr,
            )
        return Segmenter.ensemble([load(path) for path in paths])

    return segmenter_for


def _postprocess_of(args: argparse.Namespace):
    from neuroinsight.inference import DEFAULT_POSTPROCESS, PostprocessConfig

    thresholds = tuple(args.region_thresholds) if args.region_thresholds else DEFAULT_POSTPROCESS.region_thresholds
    return PostprocessConfig(
        decoding=args.decode or DEFAULT_POSTPROCESS.decoding,
        region_thresholds=thresholds,  # type: ignore[arg-type]
        min_component_ml=args.min_component_ml,
        largest_component_only=not args.all_components,
        core_island_fraction=0.0 if args.all_components else DEFAULT_POSTPROCESS.core_island_fraction,
        min_enhancing_ml=args.min_et_ml,
    )


def _grader(settings: Settings):
    from neuroinsight.grading import load_grade_model

    path = settings.models_dir / "grade_classifier.json"
    return load_grade_model(path) if path.exists() else None


def _analyse_from_args(args: argparse.Namespace, *, tta: bool, progress=None):
    """Load ``args.case``, pick its model and analyse it; return ``(result, grader)``."""
    from neuroinsight import io
    from neuroinsight.pipeline import analyse_case

    settings = resolve_settings(home=args.home, models_dir=args.models_dir)
    case = io.load_case(args.case)
    grader = _grader(settings)
    segmenter = _segmenter_factory(args)(case)
    result = analyse_case(
        case, segmenter, grader, tta=tta, attention=False, post=_postprocess_of(args), progress=progress
    )
    return result, grader


def _add_segment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment a case and write the label map on its own grid")
    p.add_argument("case", type=Path, help="BraTS case folder, .zip, or 4-D Decathlon NIfTI")
    p.add_argument("--out", type=Path, required=True, help="label map to write (.nii.gz) [REQUIRED]")
    p.add_argument("--probabilities", type=Path, help="also write class probabilities (4-D .nii.gz)")
    p.add_argument("--uncertainty", type=Path, help="also write the uncertainty map (needs TTA, so enables it)")
    _add_model_args(p)
    p.set_defaults(run=_run_segment)


def _run_segment(args: argparse.Namespace) -> int:
    import numpy as np

    from neuroinsight import io
    from neuroinsight.grading import CAVEAT
    from neuroinsight.inference import accuracy_text, seen_patient_note

    tta = args.tta or args.uncertainty is not None
    result, _ = _analyse_from_args(args, tta=tta, progress=_text_progress(not args.no_progress))
    case, seg = result.case, result.segmentation
    io.save_label_map(seg.labels, case, args.out)
    if args.probabilities:
        io.save_volume(seg.probabilities.astype(np.float32), case, args.probabilities)
    if args.uncertainty and seg.uncertainty is not None:
        io.save_volume(seg.uncertainty.astype(np.float32), case, args.uncertainty)
    tta_note = ", flip TTA" if seg.tta else ""
    print(f"case {case.case_id}: model {seg.model_name} ({'+'.join(seg.modalities)}){tta_note}, {seg.seconds:.1f} s")
    for region, volume in result.volumes_ml.items():
        caveat = "" if result.is_reliable(region) else "  (unreliable without T1ce)"
        print(f"  {region:<4} {volume:9.2f} cm3{caveat}")
    if result.hgg_probability is not None:
        print(f"  P(HGG) {result.hgg_probability:.2f}  ({CAVEAT})")
    # Without ground truth these volumes are all a user has; say how far to trust the model that made them.
    print(f"  accuracy to expect: {accuracy_text(result.model_info)}")
    warnings = list(result.warnings)
    if result.scores:
        print("  Dice " + " ".join(f"{r} {s.dice:.3f}" for r, s in result.scores.items()))
        warnings += filter(None, [seen_patient_note(result.model_info, case)])
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------- evaluate


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="segment and score every case with ground truth in a folder")
    p.add_argument("data_dir", type=Path, help="folder of BraTS case folders")
    p.add_argument("--out", type=Path, help="CSV with one row per case and region")
    p.add_argument("--cases", nargs="+", help="only these case ids")
    p.add_argument("--labels-out", type=Path, help="folder to write predicted label maps into")
    p.add_argument("--record", action="store_true", help="store the means as test metrics in the model's JSON")
    _add_model_args(p)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from neuroinsight import io
    from neuroinsight.metrics import summarise
    from neuroinsight.pipeline import evaluate_folder, held_out_comparison, rows_to_csv, seen_cases

    case_dirs = io.list_cases(args.data_dir)
    if args.cases:
        unknown = sorted(set(args.cases) - {p.name for p in case_dirs})
        if unknown:
            raise InputError(f"Not in {args.data_dir}: {', '.join(unknown)}.")
        case_dirs = [p for p in case_dirs if p.name in args.cases]
    rows = evaluate_folder(
        case_dirs,
        _segmenter_factory(args),
        post=_postprocess_of(args),
        tta=args.tta,
        label_out=args.labels_out,
        progress=_text_progress(not args.no_progress),
    )
    if not rows:
        raise InputError(f"No case in {args.data_dir} has ground truth (_seg) to evaluate against.")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(rows_to_csv(rows))
    summary = summarise(rows)
    print(f"{len(rows) // 3} cases")
    print(f"{'region':<6} {'metric':<15} {'mean':>9} {'median':>9} {'std':>9}")
    for region, metrics in summary.items():
        for metric, stats in metrics.items():
            print(f"{region:<6} {metric:<15} {stats['mean']:9.3f} {stats['median']:9.3f} {stats['std']:9.3f}")
    dice = {r: summary[r]["dice"]["mean"] for r in ("WT", "TC", "ET")}
    if args.record:
        _record_test_metrics(args, rows, summary)
    seen = seen_cases(rows)
    if seen:
        print(
            f"note: {len(seen)} of these cases ({', '.join(seen)}) {'was' if len(seen) == 1 else 'were'} among the "
            "model's own training or validation patients; their scores overstate the accuracy to expect on new "
            "patients (see models/MODEL_CARD.md). " + held_out_comparison(rows)
        )
    print(f"Dice WT {dice['WT']:.3f} TC {dice['TC']:.3f} ET {dice['ET']:.3f}")
    return 0


def _record_test_metrics(args: argparse.Namespace, rows: list[dict], summary: dict) -> None:
    """Write the evaluation's means into the JSON beside the one model that produced them."""
    from neuroinsight.inference import update_model_info
    from neuroinsight.pipeline import seen_cases

    models = {str(r["model"]) for r in rows}
    if len(models) != 1 or args.model is None:
        raise InputError("--record needs one model given with --model.")
    seen = seen_cases(rows)
    if seen:
        raise InputError(
            f"--record stores held-out test numbers, but {args.model} was trained or selected on "
            f"{', '.join(seen)}; pass only its test patients with --cases."
        )
    update_model_info(
        args.model,
        "test_metrics",
        {
            "cases": sorted({str(r["case"]) for r in rows}),
            "dice": {r: round(summary[r]["dice"]["mean"], 4) for r in ("WT", "TC", "ET")},
            "hd95_mm": {r: round(summary[r]["hd95_mm"]["mean"], 2) for r in ("WT", "TC", "ET")},
            "postprocess": _postprocess_of(args).__dict__,
            "precision": args.precision or DEFAULT_PRECISION,
            "tta": args.tta,
            "command": args.command_line,
        },
    )


# --------------------------------------------------------------------------- report


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="segment a case and write its PDF report")
    p.add_argument("case", type=Path, help="BraTS case folder, .zip, or 4-D Decathlon NIfTI")
    p.add_argument("--out", type=Path, required=True, help="PDF to write [REQUIRED]")
    p.add_argument("--date", help="timestamp printed in the report, ISO format (reproducible output)")
    p.add_argument(
        "--colour-blind-safe",
        action="store_true",
        help="draw the labels in colours that stay apart with colour blindness (Okabe & Ito), as the app's "
        "sidebar switch does",
    )
    _add_model_args(p)
    p.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from datetime import datetime

    from neuroinsight import viz
    from neuroinsight.report import build_pdf

    result, grader = _analyse_from_args(args, tta=args.tta)
    created = datetime.fromisoformat(args.date) if args.date else None
    pdf = build_pdf(
        result,
        grade_evaluation=grader.evaluation if grader else None,
        created=created,
        palette=viz.COLOUR_BLIND_PALETTE if args.colour_blind_safe else viz.BRATS_PALETTE,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(pdf)
    print(f"wrote {args.out} ({len(pdf) / 1024:.0f} KB)")
    return 0


# --------------------------------------------------------------------------- fit-grader


def _add_fit_grader(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-grader", help="fit the HGG/LGG classifier on a data folder with grades.csv")
    p.add_argument("--data", dest="data_dir", type=Path, help="BraTS data folder [default: NEUROINSIGHT_DATA]")
    p.add_argument("--out", type=Path, default=Path("models/grade_classifier.json"), help="output JSON")
    p.set_defaults(run=_run_fit_grader)


def _run_fit_grader(args: argparse.Namespace) -> int:
    from neuroinsight import io
    from neuroinsight.grading import fit_grade_model, grade_features

    settings = _settings(args)
    grades = io.read_grades(settings.data_dir)
    if not grades:
        raise InputError(f"{settings.data_dir}/grades.csv is missing; it lists case,grade (HGG/LGG).")
    features, labels = [], []
    for case_dir in io.list_cases(settings.data_dir):
        if case_dir.name not in grades:
            continue
        case = io.load_case(case_dir)
        if case.label is None:
            continue
        features.append(grade_features(case.label, case.images, case.spacing_mm))
        labels.append(grades[case_dir.name])
    model = fit_grade_model(features, labels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(model.to_json())
    ev = model.evaluation
    print(
        f"{ev['n_cases']} cases ({ev['n_hgg']} HGG, {ev['n_lgg']} LGG), leave-one-patient-out "
        f"AUC {ev['auc']:.3f}, balanced accuracy {ev['balanced_accuracy']:.3f} -> {args.out}"
    )
    return 0


# --------------------------------------------------------------------------- crossval


def _add_crossval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crossval", help="patient-level cross-validation of training presets")
    p.add_argument("--data", dest="data_dir", type=Path, help="BraTS data folder [default: NEUROINSIGHT_DATA]")
    p.add_argument("--presets", nargs="+", default=["seed", "improved", "four"], help="presets to compare")
    p.add_argument("--folds", type=int, default=4, help="number of folds (default 4)")
    p.add_argument("--only-folds", type=int, nargs="+", help="run only these folds (parallel runs)")
    p.add_argument(
        "--epochs", type=int, default=CROSSVAL_EPOCHS, help=f"epochs per fold (default {CROSSVAL_EPOCHS}; others: P+eN)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=CROSSVAL_BATCH_SIZE,
        help=f"slices per step (default {CROSSVAL_BATCH_SIZE}; others: P+bsN)",
    )
    _add_training_precision(p, scoring=f"; scoring runs in {DEFAULT_PRECISION} like the app, or in the policy given")
    p.add_argument("--select", choices=("best", "last"), default="last", help="epoch kept per run (default last)")
    p.add_argument("--loss", choices=LOSS_CHOICES, help="loss (results named P+LOSS)")
    p.add_argument("--seed", type=int, default=0, help="fold and training seed (default 0)")
    p.add_argument("--train-seed", type=int, help="training seed on the folds of --seed (results P+seedN)")
    _add_recipe_arguments(p, named=True)
    p.add_argument(
        "--n-val", type=int, default=1, help="validation patients per fold (default 1; 0 trains on all, results P+val0)"
    )
    p.add_argument("--work", type=Path, default=Path("runs/crossval"), help="folder for the fold models")
    p.add_argument("--reuse-models", action="store_true", help="score fold models already in --work, train the rest")
    p.add_argument("--resume", action="store_true", help="continue killed fold trainings from their last epoch")
    p.add_argument("--tta", action="store_true", help="score every fold without and with flip test-time augmentation")
    p.add_argument("--out", type=Path, required=True, help="CSV: one row per preset, tta, post, fold, case, region")
    p.set_defaults(run=_run_crossval)


def _run_crossval(args: argparse.Namespace) -> int:
    from neuroinsight.crossval import POST_VARIANTS, run_crossval, summary_table
    from neuroinsight.pipeline import rows_to_csv

    settings = _settings(args)
    overrides = {"precision": _training_precision(args.precision), "select": args.select}
    overrides.update({k: getattr(args, k) for k in ("augment", "loss", "norm", "deep_supervision") if getattr(args, k)})
    if args.extra_planes:
        overrides["extra_planes"] = tuple(args.extra_planes)
    tta_options = (False, True) if args.tta else (False,)
    rows = run_crossval(
        settings.data_dir,
        args.presets,
        args.work,
        n_folds=args.folds,
        seed=args.seed,
        train_seed=args.train_seed,
        n_val=args.n_val,
        context=args.context,
        image_size=args.image_size,
        plane=args.plane,
        filters=args.filters,
        bottleneck=args.bottleneck,
        epochs=args.epochs,
        batch_size=args.batch_size,
        overrides=overrides,
        posts=POST_VARIANTS,
        precision=DEFAULT_PRECISION if args.precision == "auto" else args.precision,
        cache_dir=settings.cache_dir,
        folds=args.only_folds,
        tta_options=tta_options,
        reuse_models=args.reuse_models,
        resume=args.resume,
        progress=print,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(rows_to_csv(rows, extra_columns=["preset", "tta", "post", "fold"]))
    print(summary_table(rows))
    return 0


def _add_crossval_table(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crossval-table", help="Markdown summary of cross-validation CSVs (e.g. one per fold)")
    p.add_argument("csv", type=Path, nargs="+", help="CSV files written by crossval --out")
    p.add_argument("--volume-tolerance", type=float, default=25.0, help="WT volume error counted as within (%%)")
    p.add_argument("--variant", nargs=3, metavar=("PRESET", "TTA", "POST"), help="one variant, e.g. four off largest")
    p.add_argument("--group-by", nargs="+", default=["preset", "tta", "post"], help="columns of one table line")
    p.add_argument("--patients", action="store_true", help="also one line per patient of --variant")
    p.add_argument("--ci", action="store_true", help="add each mean Dice's 95%% bootstrap interval over patients")
    p.add_argument(
        "--against",
        nargs=3,
        metavar=("PRESET", "TTA", "POST"),
        help="compare --variant with this variant patient by patient (paired difference, 95%% CI, Wilcoxon p)",
    )
    p.add_argument(
        "--against-csv",
        type=Path,
        nargs="+",
        metavar="CSV",
        help="read --against from these CSVs instead (e.g. a retraining of the same recipe)",
    )
    p.add_argument("--record", type=Path, metavar="MODEL", help="store --variant's means in MODEL's JSON (app, PDF)")
    p.add_argument(
        "--record-as",
        choices=("crossval", "ensemble_crossval"),
        default="crossval",
        help="JSON entry: the model's own recipe, or the ensemble it leads (--ensemble) [default: crossval]",
    )
    p.set_defaults(run=_run_crossval_table)


def _run_crossval_table(args: argparse.Namespace) -> int:
    from neuroinsight.crossval import (
        compare_variants,
        comparison_table,
        patient_table,
        read_rows,
        summary_table,
        variant_summary,
    )
    from neuroinsight.inference import update_model_info

    missing = [str(p) for p in [*args.csv, *(args.against_csv or [])] if not p.is_file()]
    if missing:
        raise InputError(f"Not found: {', '.join(missing)}.")
    if (args.patients or args.record or args.against) and not args.variant:
        raise InputError("--patients, --record and --against need --variant PRESET TTA POST.")
    if args.against_csv and not args.against:
        raise InputError("--against-csv needs --against PRESET TTA POST.")
    if args.record and not args.record.exists():
        raise InputError(f"Model {args.record} not found.")
    rows = read_rows(args.csv)
    print(summary_table(rows, volume_tolerance_pct=args.volume_tolerance, group_by=args.group_by, ci=args.ci))
    if args.patients:
        print()
        print(patient_table(rows, tuple(args.variant)))
    if args.against:
        other_rows = read_rows(args.against_csv) if args.against_csv else rows
        name_a, name_b = "/".join(args.variant), "/".join(args.against)
        if name_a == name_b:
            name_a, name_b = f"{name_a} (a)", f"{name_b} (b)"
        print()
        print(comparison_table(compare_variants(rows, args.variant, other_rows, args.against), name_a, name_b))
    if args.record:
        summary = variant_summary(rows, tuple(args.variant))
        summary["command"] = args.command_line
        update_model_info(args.record, args.record_as, summary)
        print(f"\nRecorded in {args.record.with_suffix('.json')}")
    return 0


# --------------------------------------------------------------------------- robustness


def _add_robustness(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness", help="score fold models on their test patients under simulated site shifts")
    p.add_argument("models", type=Path, nargs="+", help="models whose JSON lists test patients (crossval fold models)")
    p.add_argument("--data", dest="data_dir", type=Path, help="BraTS data folder [default: NEUROINSIGHT_DATA]")
    p.add_argument("--shifts", nargs="+", help="shifts to apply (default: none and every shift)")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation (default off: the network alone)")
    p.add_argument("--precision", default=DEFAULT_PRECISION, help="inference precision")
    p.add_argument(
        "--ensemble-with",
        type=Path,
        nargs="+",
        default=(),
        metavar="MODEL",
        help="run each model as an ensemble with these (one per model, same folds, same order)",
    )
    p.add_argument("--out", type=Path, required=True, help="CSV: one row per model, shift, case, region")
    p.set_defaults(run=_run_robustness)


def _run_robustness(args: argparse.Namespace) -> int:
    from neuroinsight.crossval import summary_table
    from neuroinsight.pipeline import rows_to_csv
    from neuroinsight.robustness import SHIFT_NAMES, evaluate_shifts

    missing = [str(p) for p in [*args.models, *args.ensemble_with] if not p.is_file()]
    if missing:
        raise InputError(f"Not found: {', '.join(missing)}.")
    shifts = args.shifts or SHIFT_NAMES
    data_dir = _settings(args).data_dir
    rows = evaluate_shifts(
        args.models,
        data_dir,
        shifts,
        partners=args.ensemble_with,
        tta=args.tta,
        precision=args.precision,
        progress=print,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(rows_to_csv(rows, extra_columns=["preset", "fold", "shift"]))
    print(summary_table(rows, group_by=("preset", "shift")))
    return 0


# --------------------------------------------------------------------------- bench


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed, memory and scale as ratios in one run")
    p.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a smoke test)")
    p.add_argument("--model", type=Path, help="model to benchmark [default: models/attention_unet.keras]")
    p.add_argument("--data", dest="data_dir", type=Path, help="BraTS data folder for the generator benchmark")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from neuroinsight import bench

    settings = _settings(args)
    model = args.model or settings.models_dir / "attention_unet.keras"
    if not model.exists():
        raise InputError(f"Model {model} not found; pass --model.")
    figures = bench.run(model, settings.data_dir, quick=args.quick, print_line=lambda s: print(s, flush=True))
    if args.json:
        args.json.write_text(bench.to_json(figures))
    return 0


# --------------------------------------------------------------------------- main


COMMANDS = (
    _add_validate,
    _add_phantom,
    _add_train,
    _add_segment,
    _add_evaluate,
    _add_report,
    _add_fit_grader,
    _add_crossval,
    _add_crossval_table,
    _add_robustness,
    _add_bench,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``neuroinsight`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m neuroinsight",
        description="NeuroInsight: brain-tumor segmentation on multi-modal MRI. User errors exit with code 2.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--no-progress", action="store_true", help="no progress output")
    parser.add_argument(
        "--home", type=Path, help="history and cache folder [default: NEUROINSIGHT_HOME or ~/.neuroinsight]"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:  # a first try without arguments gets the list of commands, not only "COMMAND required"
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "neuroinsight", *argv])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.run(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
