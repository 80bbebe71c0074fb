"""Patient-level cross-validation of training presets.

For each preset and each of ``n_folds`` grade-stratified folds: train on the other
patients (one of them held out for validation), segment the fold's patients in
native space and score them with :mod:`neuroinsight.metrics`. No patient is ever in
the test fold and the training set of the same run.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from neuroinsight import io
from neuroinsight.errors import InputError
from neuroinsight.inference import (
    BEFORE_CORE_ISLANDS,
    DEFAULT_POSTPROCESS,
    DEFAULT_PRECISION,
    NO_POSTPROCESS,
    PostprocessConfig,
    Segmenter,
    postprocess,
)
from neuroinsight.metrics import score_case, summarise
from neuroinsight.pipeline import score_rows
from neuroinsight.preprocessing import restore_labels

if TYPE_CHECKING:
    from neuroinsight.training import TrainConfig

logger = logging.getLogger(__name__)

#: Epochs of every fold training in the model card's cross-validations (``crossval --epochs``).
CROSSVAL_EPOCHS = 30
#: Slices per step in those cross-validations (``crossval --batch-size``): a speed choice on the
#: CPU, not the seed's batch 2, so other batch sizes are measured as separate recipes.
CROSSVAL_BATCH_SIZE = 16

#: Post-processing variants scored on the same predictions, so that each is on by default
#: only where cross-validation shows it helps. Removing small components instead of all but
#: the largest would keep a second lesion of a multifocal tumor. Relabelling a small total
#: enhancing volume as necrosis follows Isensee et al. (BraTS 2018): LGGs often have no
#: enhancing tumor, and a few false-positive ET voxels there turn a Dice of 1 into 0.
#: ``+regions``: labels decoded from the nested BraTS regions instead of the argmax (thresholds
#: at halves; ``-tuned``: the thresholds chosen by bench/crossval/thresholds.py). ``+core0.3``
#: (the default) also makes core islands under 30 % of the largest edema, ``+core-largest`` all
#: but the largest.
POST_VARIANTS: dict[str, PostprocessConfig] = {
    "none": NO_POSTPROCESS,
    "min1ml": PostprocessConfig(min_component_ml=1.0),
    "min5ml": PostprocessConfig(min_component_ml=5.0),
    "largest": PostprocessConfig(largest_component_only=True),
    "largest_et0.5": PostprocessConfig(largest_component_only=True, min_enhancing_ml=0.5),
    "largest_et1": PostprocessConfig(largest_component_only=True, min_enhancing_ml=1.0),
    "none+regions": PostprocessConfig(decoding="regions"),
    "largest+regions": PostprocessConfig(decoding="regions", largest_component_only=True),
    # The default until core islands were cleaned up (session 43); the model card's tables use it.
    BEFORE_CORE_ISLANDS: replace(DEFAULT_POSTPROCESS, core_island_fraction=0.0),
    "largest+regions-tuned+core0.3": DEFAULT_POSTPROCESS,
    "largest+regions-tuned+core-largest": replace(DEFAULT_POSTPROCESS, core_island_fraction=1.0),
}
#: The default post-processing's name among the variants, written beside numbers measured with it
#: so that a later change of the default can say which numbers predate it.
DEFAULT_POST = next(name for name, post in POST_VARIANTS.items() if post == DEFAULT_POSTPROCESS)


def run_crossval(
    data_dir: Path,
    presets: Sequence[str],
    out_dir: Path,
    *,
    n_folds: int = 4,
    seed: int = 0,
    train_seed: int | None = None,
    n_val: int = 1,
    context: int | None = None,
    image_size: int | None = None,
    plane: str | None = None,
    filters: Sequence[int] | None = None,
    bottleneck: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    overrides: dict | None = None,
    posts: dict[str, PostprocessConfig] | None = None,
    precision: str = DEFAULT_PRECISION,
    cache_dir: Path | None = None,
    folds: Sequence[int] | None = None,
    tta_options: Sequence[bool] = (False,),
    reuse_models: bool = False,
    resume: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, object]]:
    """Train and score every (preset, fold); return one row per (preset, tta, post, case, region).

    Args:
        data_dir: BraTS data folder with ``grades.csv``.
        presets: Names from ``PRESET_CONFIGS``; rows and fold models are named by
            :func:`recipe_name` (e.g. ``four+robust`` when ``overrides`` changes the augmentation).
        out_dir: Where each fold's model is written (``<recipe>_fold<k>.keras``).
        n_folds: Number of folds.
        seed: Seed of the fold assignment (and of training unless ``train_seed`` is given).
        train_seed: Training seed (initial weights, slice order, augmentation) on the same folds,
            to measure how much of a result is seed luck; the recipe is then named ``...+seedN``.
        n_val: Validation patients drawn from each fold's training patients (0: all of them
            train, which needs ``select="last"``; the recipe is then named ``...+val0``).
        context: Neighbouring slices per side as extra input channels (2.5-D; None: the preset's).
        image_size: Side of the network input in pixels (None: the preset's); recipe ``...+sN``.
        plane: Slicing plane (None: the preset's axial); recipe ``...+coronal``.
        filters: Encoder filters per level (None: the preset's 32-64-128); recipe ``...+f48-96-192``.
        bottleneck: Bottleneck filters (None: the preset's 256); recipe ``...+b384``.
        epochs: Epochs per fold training, over ``overrides`` (None: the overrides' or the
            preset's); recipe ``...+eN`` unless it is the cards' standard :data:`CROSSVAL_EPOCHS`.
        batch_size: Slices per step, over ``overrides`` (None: the overrides' or the preset's);
            recipe ``...+bsN`` unless it is the cards' standard :data:`CROSSVAL_BATCH_SIZE`.
        overrides: Fields replaced in every preset's ``TrainConfig`` (e.g. the tiny network of a
            test; its ``epochs`` and ``batch_size`` are replaced by those arguments when given).
        posts: Named post-processing variants scored on the same predictions.
        precision: Inference precision.
        cache_dir: Preprocessed-slice cache.
        folds: Run only these folds (to spread one cross-validation over several processes).
        tta_options: Score without (False) and/or with (True) left-right flip test-time augmentation.
        reuse_models: Keep a fold model that already exists in ``out_dir`` instead of retraining
            it (to score new inference variants of a finished cross-validation).
        resume: Continue a fold whose training was killed from its last finished epoch
            (``train(..., resume=True)``) instead of starting it afresh.
        progress: Called with a line of text after each fold.
    """
    # Imported here: these load Keras, which summarising CSVs does not need.
    from neuroinsight.data import split_cases
    from neuroinsight.training import PRESET_CONFIGS, train

    grades = io.read_grades(data_dir)
    folders = {p.name: p for p in io.list_cases(data_dir)}
    posts = posts or {"none": NO_POSTPROCESS}
    rows: list[dict[str, object]] = []
    for preset in presets:
        training_seed = seed if train_seed is None else train_seed
        config: TrainConfig = replace(PRESET_CONFIGS[preset], seed=training_seed, **(overrides or {}))
        config = config.with_input(context=context, image_size=image_size, plane=plane)
        base = PRESET_CONFIGS[preset]
        if filters is not None:
            config = replace(config, filters=tuple(filters))
        if bottleneck is not None:
            config = replace(config, bottleneck=bottleneck)
        if epochs is not None:
            config = replace(config, epochs=epochs)
        if batch_size is not None:
            config = replace(config, batch_size=batch_size)
        recipe = recipe_name(preset, config)
        # Named from the arguments, not the config: tests shrink the input and the network
        # through overrides, and their fold models keep the preset's name.
        if image_size is not None and image_size != base.preprocess.image_size:
            recipe += f"+s{image_size}"
        if filters is not None and tuple(filters) != base.filters:
            recipe += "+f" + "-".join(str(f) for f in filters)
        if bottleneck is not None and bottleneck != base.bottleneck:
            recipe += f"+b{bottleneck}"
        recipe += "" if n_val == 1 else f"+val{n_val}"
        # A longer run of the same recipe must not overwrite the standard run's fold models.
        recipe += "" if epochs in (None, CROSSVAL_EPOCHS) else f"+e{epochs}"
        recipe += "" if batch_size in (None, CROSSVAL_BATCH_SIZE) else f"+bs{batch_size}"
        recipe += "" if training_seed == seed else f"+seed{training_seed}"
        for fold in folds if folds is not None else range(n_folds):
            split = split_cases(grades, n_val=n_val, seed=seed, n_folds=n_folds, fold=fold)
            model_path = out_dir / f"{recipe}_fold{fold}.keras"
            if reuse_models and model_path.exists():
                logger.info("Reusing %s", model_path)
            else:
                train(
                    config,
                    [folders[c] for c in split["train"]],
                    [folders[c] for c in split["val"]],
                    model_path,
                    cache_dir=cache_dir,
                    resume=resume,
                    verbose=0,
                    extra_info={"split": split, "preset": recipe, "fold": fold},
                )
            segmenter = Segmenter.from_path(model_path, precision=precision)
            for case_id in split["test"]:
                case = io.load_case(folders[case_id])
                for tta in tta_options:
                    # Segment once; every variant starts from the same network probabilities.
                    segmentation = segmenter.segment(case, tta=tta, attention=False, post=NO_POSTPROCESS)
                    raw = {_decoding_of(NO_POSTPROCESS): segmentation.labels}
                    for post_name, post in posts.items():
                        decoding = _decoding_of(post)
                        if decoding not in raw:
                            probs, prepared = segmentation.network_probabilities, segmentation.prepared
                            raw[decoding] = restore_labels(probs, prepared, *decoding)
                        labels = postprocess(raw[decoding], post, case.voxel_volume_ml)
                        scores = score_case(labels, case.label, spacing_mm=case.spacing_mm)
                        rows += score_rows(
                            case.case_id,
                            scores,
                            segmenter.name,
                            preset=recipe,
                            fold=fold,
                            tta="flip" if tta else "off",
                            post=post_name,
                            train_sites=training_sites(split),
                        )
            if progress is not None:
                progress(f"{recipe} fold {fold}: test {', '.join(split['test'])}")
    return rows


#: Training settings that define a recipe: overriding one names a new recipe in the results.
RECIPE_FIELDS = ("loss", "augment", "norm")


def _decoding_of(post: PostprocessConfig) -> tuple[str, tuple[float, float, float]]:
    """What decides the raw labels of a variant: variants that share it share one decoding pass."""
    return post.decoding, post.region_thresholds


def recipe_name(preset: str, config: TrainConfig) -> str:
    """``preset`` plus ``+value`` for each recipe-defining setting that differs from the preset.

    ``recipe_name("four", config with augment="robust")`` is ``"four+robust"`` (and a 2.5-D
    input of one neighbour per side adds ``+ctx1``, coronal slices ``+coronal``, axial
    training slices joined by coronal ones ``+and-coronal``, deep supervision ``+ds``), so
    that ablations land beside the preset in the same tables and never overwrite its fold models.
    """
    from neuroinsight.training import PRESET_CONFIGS

    base = PRESET_CONFIGS[preset]
    changed = [str(getattr(config, f)) for f in RECIPE_FIELDS if getattr(config, f) != getattr(base, f)]
    if config.deep_supervision != base.deep_supervision:
        changed.append("ds")
    if config.preprocess.context != base.preprocess.context:
        changed.append(f"ctx{config.preprocess.context}")
    if config.preprocess.plane != base.preprocess.plane:
        changed.append(config.preprocess.plane)
    if config.extra_planes != base.extra_planes:
        changed.append("-".join(("and", *config.extra_planes)))
    return "+".join([preset, *changed])


def read_rows(paths: Iterable[Path]) -> list[dict[str, str]]:
    """Rows of one or more cross-validation CSVs (one per fold or process)."""
    rows: list[dict[str, str]] = []
    for path in paths:
        with open(path, newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


#: The columns that name one scored variant of a cross-validation.
VARIANT_COLUMNS = ("preset", "tta", "post")
#: Values of columns absent from older CSVs (written before TTA was scored).
_MISSING = {"tta": "off"}


def _key(row: Mapping[str, object], columns: Sequence[str]) -> tuple[str, ...]:
    """The row's values in ``columns`` as strings, defaults for columns older CSVs lack."""
    return tuple(str(row.get(column) or _MISSING.get(column, "")) for column in columns)


def _markdown(header: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def _mean_sd(summary: Mapping[str, Mapping[str, Mapping[str, float]]], region: str, metric: str, digits: int) -> str:
    values = summary.get(region, {}).get(metric)
    return "n/a" if values is None else f"{values['mean']:.{digits}f} ± {values['std']:.{digits}f}"


def _dice_by_case(rows: Sequence[Mapping[str, object]], region: str) -> dict[str, float]:
    return {str(r["case"]): float(r["dice"]) for r in rows if r["region"] == region}  # type: ignore[arg-type]


def mean_ci(
    values: Iterable[float], *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap confidence interval of the mean over patients (BCa; Efron and Tibshirani 1993).

    Resampling patients asks how far the mean could move on another dozen patients of
    the same kind, which a standard deviation alone does not say. Fixed ``seed`` and sorted
    values: the same patients give the same interval in any order (CSVs list them by fold).
    NaN (unscored) values are left out; constant or single values give ``(mean, mean)``.
    """
    data = np.sort(np.asarray(list(values), dtype=float))
    data = data[~np.isnan(data)]
    if data.size == 0:
        raise ValueError("No values to bootstrap.")
    if data.size < 2 or np.ptp(data) == 0:
        return float(data.mean()), float(data.mean())
    result = stats.bootstrap(
        (data,), np.mean, confidence_level=confidence, n_resamples=n_resamples, rng=np.random.default_rng(seed)
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summary_table(
    rows: Sequence[Mapping[str, object]],
    *,
    volume_tolerance_pct: float = 25.0,
    group_by: Sequence[str] = VARIANT_COLUMNS,
    ci: bool = False,
) -> str:
    """Markdown table, one line per value of the ``group_by`` columns: mean +- sample SD over patients.

    Columns: Dice and HD95 per BraTS region, and how many patients have a whole-tumor
    volume within ``volume_tolerance_pct`` of the truth. With ``ci``, each Dice cell also
    gives the 95 % bootstrap interval of its mean (:func:`mean_ci`).
    """
    unknown = [c for c in group_by if rows and c not in rows[0] and c not in _MISSING]
    if unknown:
        raise InputError(f"No column {', '.join(unknown)} in the results; they have {', '.join(rows[0])}.")
    regions = ("WT", "TC", "ET")
    header = [*group_by, "patients"]
    header += [f"{r} Dice" for r in regions] + [f"{r} HD95 mm" for r in regions]
    header.append(f"WT volume within {volume_tolerance_pct:g} %")

    def key(row: Mapping[str, object]) -> tuple[str, ...]:
        return _key(row, group_by)

    lines = []
    for variant, members in itertools.groupby(sorted(rows, key=key), key=key):
        members = list(members)
        _check_once_per_patient(members, variant)
        summary = summarise(members)
        errors = [float(r["volume_error_pct"]) for r in members if r["region"] == "WT" and "volume_error_pct" in r]
        within = sum(abs(e) <= volume_tolerance_pct for e in errors if not math.isnan(e))
        cells = [*variant, str(len({r["case"] for r in members}))]
        for region in regions:
            cell = _mean_sd(summary, region, "dice", 3)
            if ci and "dice" in summary.get(region, {}):
                cell += " [{:.3f}, {:.3f}]".format(*mean_ci(_dice_by_case(members, region).values()))
            cells.append(cell)
        cells += [_mean_sd(summary, r, "hd95_mm", 1) for r in regions]
        cells.append(f"{within}/{len(errors)}" if errors else "n/a")
        lines.append(cells)
    return _markdown(header, lines)


def site_of(case_id: str) -> str:
    """The contributing site in a BraTS id (``Brats18_TCIA01_201_1`` -> ``TCIA01``)."""
    parts = case_id.split("_")
    return parts[1] if len(parts) >= 3 else case_id


def training_sites(split: Mapping[str, Sequence[str]]) -> str:
    """The sites a fold model trained or was validated on, space-separated (a crossval row's ``train_sites``)."""
    return " ".join(sorted({site_of(c) for c in (*split["train"], *split["val"])}))


def _check_once_per_patient(rows: Sequence[Mapping[str, object]], variant: Sequence[str]) -> None:
    """Refuse a variant that scores a patient twice: counting a patient twice would narrow every interval.

    It happens when two runs of one recipe (whose rows share a name) are read together, or
    when ``group_by`` leaves out a column that tells variants apart.
    """
    seen: set[tuple[str, str]] = set()
    for row in rows:
        key = (str(row["case"]), str(row["region"]))
        if key in seen:
            raise InputError(
                f"{'/'.join(variant)} scores {key[0]} ({key[1]}) more than once: the CSVs hold two runs of "
                "one recipe, or --group-by leaves out a column that tells the rows apart. Read each run on "
                "its own (compare two runs with --against-csv) or group by more columns."
            )
        seen.add(key)


def _rows_of(
    rows: Sequence[Mapping[str, object]], variant: Sequence[str], columns: Sequence[str] = VARIANT_COLUMNS
) -> list[Mapping[str, object]]:
    chosen = [r for r in rows if _key(r, columns) == tuple(variant)]
    if not chosen:
        raise InputError(f"No rows for {'/'.join(columns)} {'/'.join(variant)}.")
    _check_once_per_patient(chosen, variant)
    return chosen


def variant_summary(
    rows: Sequence[Mapping[str, object]], variant: Sequence[str], columns: Sequence[str] = VARIANT_COLUMNS
) -> dict[str, object]:
    """Mean, sample SD and 95 % interval of the mean (:func:`mean_ci`) of Dice, and mean HD95, per region,
    and each patient's Dice.

    One variant, by default named by (preset, tta, post).

    The form stored as ``crossval`` in a model's JSON (``crossval-table --record``); with
    ``columns=("preset", "missing")`` the one stored as ``without_t1ce``
    (``bench/robustness/missing_modality.py --record``).
    """
    chosen = _rows_of(rows, variant, columns)
    summary = summarise(chosen)
    regions = ("WT", "TC", "ET")
    by_region = {r: _dice_by_case(chosen, r) for r in regions}
    return {
        **dict(zip(columns, variant, strict=True)),
        "folds": len({str(r["fold"]) for r in chosen}),
        "patients": len({str(r["case"]) for r in chosen}),
        "dice": {r: round(summary[r]["dice"]["mean"], 4) for r in regions},
        "dice_sd": {r: round(summary[r]["dice"]["std"], 4) for r in regions},
        "dice_ci": {r: [round(bound, 4) for bound in mean_ci(by_region[r].values())] for r in regions},
        "hd95_mm": {r: round(summary[r]["hd95_mm"]["mean"], 2) for r in regions},
        # Each patient's Dice from the fold model that never saw it: the app compares a case with these.
        "per_patient": {
            case: {r: round(dice[case], 4) for r, dice in by_region.items() if case in dice}
            for case in sorted({str(r["case"]) for r in chosen})
        },
    }


@dataclass(frozen=True)
class PairedDifference:
    """One region's paired comparison of two variants on the patients both scored."""

    region: str
    patients: int
    mean_a: float
    mean_b: float
    #: Mean of the per-patient differences a - b, and its 95 % bootstrap interval.
    difference: float
    ci: tuple[float, float]
    #: Patients on which a scored higher / lower than b.
    better: int
    worse: int
    #: Two-sided Wilcoxon signed-rank p-value of the differences (1.0 when they are all zero).
    p_value: float


def compare_variants(
    rows_a: Sequence[Mapping[str, object]],
    variant_a: Sequence[str],
    rows_b: Sequence[Mapping[str, object]],
    variant_b: Sequence[str],
    regions: Sequence[str] = ("WT", "TC", "ET"),
) -> list[PairedDifference]:
    """Dice of variant a against variant b, patient by patient.

    Pairing by patient removes the spread between patients (TC Dice runs from 0.1 to 0.9
    here), so a difference that unpaired means would hide can show. Only patients scored
    by both count, and a region neither scored is left out. ``rows_a`` and ``rows_b`` may
    be the same rows, or two runs of the same recipe (a retraining) read from different files.
    """
    chosen_a, chosen_b = _rows_of(rows_a, variant_a), _rows_of(rows_b, variant_b)
    results = []
    for region in regions:
        a, b = _dice_by_case(chosen_a, region), _dice_by_case(chosen_b, region)
        if not a and not b:
            continue  # a region neither run scored
        cases = sorted(set(a) & set(b))
        if not cases:
            raise InputError(f"{'/'.join(variant_a)} and {'/'.join(variant_b)} share no patient for {region}.")
        first, second = np.array([a[c] for c in cases]), np.array([b[c] for c in cases])
        differences = first - second
        p_value = 1.0 if not differences.any() else float(stats.wilcoxon(differences).pvalue)
        results.append(
            PairedDifference(
                region=region,
                patients=len(cases),
                mean_a=float(first.mean()),
                mean_b=float(second.mean()),
                difference=float(differences.mean()),
                ci=mean_ci(differences),
                better=int((differences > 0).sum()),
                worse=int((differences < 0).sum()),
                p_value=p_value,
            )
        )
    return results


def comparison_table(differences: Sequence[PairedDifference], name_a: str, name_b: str) -> str:
    """Markdown table of :func:`compare_variants`, one line per region."""
    header = ["region", "patients", f"{name_a} Dice", f"{name_b} Dice", "difference [95 % CI]", "better / worse", "p"]
    lines = [
        [
            d.region,
            str(d.patients),
            f"{d.mean_a:.3f}",
            f"{d.mean_b:.3f}",
            f"{d.difference:+.3f} [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}]",
            f"{d.better} / {d.worse}",
            f"{d.p_value:.2f}",
        ]
        for d in differences
    ]
    return _markdown(header, lines)


def patient_table(rows: Sequence[Mapping[str, object]], variant: tuple[str, str, str]) -> str:
    """Markdown table of one (preset, tta, post) variant, one line per test patient.

    "site seen" says whether another patient of the same site was in the fold's
    training or validation set: patients from unseen sites are the closest this data
    comes to scans from another hospital. Rows that carry ``train_sites`` (written since
    it was added) say it directly. For older CSVs it is read from the other folds' test
    patients in ``rows``, which needs every fold of the cross-validation: rows of a single
    fold say ``n/a``, and with some folds missing a "no" can be wrong (their patients are unknown).
    """
    chosen = _rows_of(rows, variant)
    fold_of = {str(r["case"]): str(r["fold"]) for r in chosen}
    sites_of = {str(r["case"]): str(r["train_sites"]).split() for r in chosen if r.get("train_sites")}
    cells: dict[str, dict[str, float]] = {}
    for r in chosen:
        cells.setdefault(str(r["case"]), {})[str(r["region"])] = float(r["dice"])
        if r["region"] == "WT" and r.get("volume_error_pct") not in (None, ""):
            cells[str(r["case"])]["volume"] = float(r["volume_error_pct"])  # type: ignore[arg-type]
    header = ["patient", "fold", "site", "site seen", "WT Dice", "TC Dice", "ET Dice", "WT volume error %"]
    lines = []
    several_folds = len(set(fold_of.values())) > 1
    for case, scores in sorted(cells.items()):
        if case in sites_of:
            seen: bool | None = site_of(case) in sites_of[case]
        elif several_folds:
            seen = any(site_of(c) == site_of(case) for c, f in fold_of.items() if f != fold_of[case])
        else:
            seen = None
        line = [case, fold_of[case], site_of(case), {True: "yes", False: "no", None: "n/a"}[seen]]
        line += [f"{scores.get(r, math.nan):.3f}" for r in ("WT", "TC", "ET")]
        line.append(f"{scores['volume']:+.1f}" if "volume" in scores else "n/a")
        lines.append(line)
    return _markdown(header, lines)
