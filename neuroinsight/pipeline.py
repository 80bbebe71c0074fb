"""One case end to end (segment, measure, grade, score) and a folder of cases.

The app, the CLI and the benchmarks all call these two functions, so they share
one code path.
"""

from __future__ import annotations

import csv
import io as _io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuroinsight import io
from neuroinsight.grading import GradeModel, grade_features
from neuroinsight.inference import (
    DEFAULT_POSTPROCESS,
    PostprocessConfig,
    Segmentation,
    Segmenter,
    held_out_dice,
    no_contrast_note,
    training_role,
)
from neuroinsight.metrics import METRIC_NAMES, RegionScores, region_volumes_ml, score_case
from neuroinsight.preprocessing import skull_strip_warning


@dataclass
class CaseResult:
    """Everything known about one analysed case.

    Attributes:
        case: The input case.
        segmentation: The model's output.
        volumes_ml: NCR, ED, ET, WT, TC volumes in cm3 of the prediction.
        hgg_probability: P(HGG) from the grade model (None without one).
        scores: Metrics per BraTS region when ground truth exists, else None.
        model_info: The model's training sidecar (settings, split, measured metrics).
        warnings: Sentences for the user about an input unlike the training data.
    """

    case: io.Case
    segmentation: Segmentation
    volumes_ml: dict[str, float]
    hgg_probability: float | None
    scores: dict[str, RegionScores] | None
    model_info: dict = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)
    _windows: dict[tuple, tuple[float, float]] = field(default_factory=dict, repr=False)

    def display_window(self, modality: str, percentiles: tuple[float, float] | None = None) -> tuple[float, float]:
        """Intensity window of a modality for display, computed once per case and ``percentiles`` of
        its brain voxels (None: :data:`neuroinsight.viz.DEFAULT_WINDOW_PERCENTILES`)."""
        from neuroinsight import viz  # plotting stack only where something is shown

        key = (modality, tuple(percentiles or viz.DEFAULT_WINDOW_PERCENTILES))
        if key not in self._windows:
            self._windows[key] = viz.intensity_window(self.case.images[modality], key[1])
        return self._windows[key]

    def is_reliable(self, region: str) -> bool:
        """Whether a volume (NCR, ED, ET, WT, TC) can be trusted: without T1ce only the whole tumor."""
        return region == "WT" or not self.segmentation.without_contrast

    @property
    def seen_in_training(self) -> str:
        """``"training"`` or ``"validation"`` if the model saw this patient while it was trained, else ``"no"``."""
        return training_role(self.model_info, self.case)

    @property
    def tumor_found(self) -> bool:
        """True when any voxel is labelled tumor."""
        return bool(self.volumes_ml["WT"] > 0)


def analyse_case(
    case: io.Case,
    segmenter: Segmenter,
    grader: GradeModel | None = None,
    *,
    tta: bool = False,
    attention: bool = True,
    post: PostprocessConfig = DEFAULT_POSTPROCESS,
    progress: Callable[[int, int], None] | None = None,
) -> CaseResult:
    """Segment a case, measure its volumes, estimate the grade and score it against ground truth.

    ``attention`` records the attention-gate maps (the app shows them; the CLI does not need them).
    """
    segmentation = segmenter.segment(case, tta=tta, attention=attention, post=post, progress=progress)
    volumes = region_volumes_ml(segmentation.labels, case.spacing_mm)
    probability = None
    # The grade's features read enhancement on T1ce (grading.grade_features): without it there is no grade.
    if grader is not None and volumes["WT"] > 0 and case.has_contrast:
        probability = grader.predict_proba(grade_features(segmentation.labels, case.images, case.spacing_mm))
    scores = None
    if case.label is not None:
        scores = score_case(segmentation.labels, case.label, spacing_mm=case.spacing_mm)
    warnings = [no_contrast_note(segmenter.info)] if segmentation.without_contrast else []
    warnings += filter(None, [skull_strip_warning(segmentation.prepared.brain, case.voxel_volume_ml)])
    return CaseResult(
        case,
        segmentation,
        volumes,
        probability,
        scores,
        model_info=segmenter.info,
        warnings=warnings,
    )


def score_rows(case_id: str, scores: dict[str, RegionScores], model: str, **columns: object) -> list[dict[str, object]]:
    """One CSV row per region: case, model, region, every metric and ``columns`` (e.g. fold, recipe)."""
    return [
        {"case": case_id, "model": model, "region": region, **s.to_dict(), **columns} for region, s in scores.items()
    ]


def comparison_rows(results: Sequence[CaseResult]) -> list[dict[str, object]]:
    """One row per scored analysis of a case (another model, TTA on or off): model, TTA, Dice and
    HD95 per BraTS region, seconds and whether the model saw the patient in training, so analyses
    of the same scans compare side by side."""
    rows = []
    for result in results:
        if result.scores is None:
            continue
        seg = result.segmentation
        row: dict[str, object] = {"model": seg.model_name, "flip TTA": seg.tta}
        row.update({f"Dice {region}": s.dice for region, s in result.scores.items()})
        row.update({f"HD95 {region} (mm)": s.hd95_mm for region, s in result.scores.items()})
        row["seconds"] = seg.seconds
        row["model saw patient"] = result.seen_in_training  # a model's own training patient flatters it
        rows.append(row)
    return rows


def rows_to_csv(rows: Sequence[dict[str, object]], extra_columns: Sequence[str] = ()) -> str:
    """Metric rows as CSV text (header: extra columns, case, model, region, metrics, any other keys)."""
    buffer = _io.StringIO()
    columns = [*extra_columns, "case", "model", "region", *METRIC_NAMES]
    columns += [k for k in dict.fromkeys(k for row in rows for k in row) if k not in columns]
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def evaluate_folder(
    case_dirs: Sequence[Path],
    segmenter_for: Callable[[io.Case], Segmenter],
    *,
    post: PostprocessConfig = DEFAULT_POSTPROCESS,
    tta: bool = False,
    label_out: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, object]]:
    """Segment and score every case that has ground truth.

    Each row's ``seen_in_training`` says whether the model trained (``training``) or was
    validated (``validation``) on that patient, or ``no``; for such a patient ``held_out_dice``
    is its Dice in the cross-validation of the model's recipe (None otherwise).

    Args:
        case_dirs: Case folders.
        segmenter_for: Picks the segmenter for a case (by its modalities).
        post: Post-processing settings.
        tta: Left-right flip test-time augmentation.
        label_out: If given, each predicted label map is written there as ``<case>_pred.nii.gz``.
        progress: Called as ``progress(done, total)`` per case.
    """
    rows: list[dict[str, object]] = []
    for done, case_dir in enumerate(case_dirs, start=1):
        case = io.load_case(case_dir)
        if case.label is not None:
            segmenter = segmenter_for(case)
            segmentation = segmenter.segment(case, tta=tta, attention=False, post=post)
            if label_out is not None:
                io.save_label_map(segmentation.labels, case, label_out / f"{case.case_id}_pred.nii.gz")
            scores = score_case(segmentation.labels, case.label, spacing_mm=case.spacing_mm)
            seen = training_role(segmenter.info, case)
            _, held_out = held_out_dice(segmenter.info, case)
            for row in score_rows(case.case_id, scores, segmenter.name, seen_in_training=seen):
                row["held_out_dice"] = held_out.get(str(row["region"]))  # None unless the model trained on it
                rows.append(row)
        if progress is not None:
            progress(done, len(case_dirs))
    return rows


def segmented_by(result: CaseResult | None, info: Mapping) -> bool:
    """Whether the model (or ensemble) that ``info`` describes segmented ``result``; its recorded
    cross-validation identifies it, as the ensemble shares its lead model's other entries."""
    return result is not None and "crossval" in info and result.model_info.get("crossval") == info["crossval"]


def crossval_marks(result: CaseResult | None, info: Mapping) -> dict[str, dict[str, float]]:
    """What to mark among the cross-validation patients of the model ``info`` describes: the current
    case's Dice, if that model scored it, and that patient's held-out Dice, if the model trained on it."""
    if result is None or result.scores is None or not segmented_by(result, info):
        return {}
    marks = {"current case": {region: s.dice for region, s in result.scores.items()}}
    name, held_out = held_out_dice(info, result.case)
    if held_out:
        marks[f"{name}, held out"] = held_out
    return marks


def seen_cases(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """Cases of :func:`evaluate_folder` rows that their model trained or was validated on."""
    return sorted({str(r["case"]) for r in rows if r.get("seen_in_training", "no") != "no"})


def held_out_comparison(rows: Sequence[Mapping[str, object]]) -> str:
    """For the :func:`evaluate_folder` cases the model trained on and whose cross-validation
    score is recorded: its mean Dice on them beside theirs held out, as one sentence ('' if none)."""
    chosen = [r for r in rows if r.get("held_out_dice") is not None]
    if not chosen:
        return ""

    def means(column: str) -> str:
        return ", ".join(
            f"{region} {np.mean([float(r[column]) for r in chosen if r['region'] == region]):.2f}"  # type: ignore[arg-type]
            for region in ("WT", "TC", "ET")
        )

    return (
        f"On the {len({r['case'] for r in chosen})} of them with a recorded cross-validation score the model "
        f"reached mean Dice {means('dice')}; held out, the same patients scored {means('held_out_dice')}."
    )
