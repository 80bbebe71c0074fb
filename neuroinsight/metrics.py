"""BraTS evaluation metrics on label maps.

Conventions:

* Inputs are label maps with raw BraTS labels ``{0, 1, 2, 4}``, same shape.
* Regions: whole tumor WT = {1, 2, 4}, tumor core TC = {1, 4}, enhancing
  tumor ET = {4} (``BRATS_REGIONS``).
* HD95 is the 95th percentile of the symmetric surface distances, in mm from the
  voxel spacing (surfaces from a 3-D erosion with full connectivity).
* Empty masks follow the BraTS challenge: both empty -> Dice 1, IoU 1, HD95 0;
  only one empty -> Dice 0, IoU 0, HD95 ``HD95_EMPTY_MM`` (373.13 mm, the
  diagonal of the 240x240x155 BraTS grid, which the challenge uses).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from neuroinsight.errors import InputError

BRATS_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
#: Sub-regions reported as volumes, with their labels.
VOLUME_REGIONS: dict[str, tuple[int, ...]] = {"NCR": (1,), "ED": (2,), "ET": (4,), "WT": (1, 2, 4), "TC": (1, 4)}
HD95_EMPTY_MM = 373.13
METRIC_NAMES = (
    "dice",
    "iou",
    "sensitivity",
    "specificity",
    "precision",
    "hd95_mm",
    "volume_diff_ml",
    "volume_error_pct",
)
#: Column headers for people (tables in the app and the report); files keep ``METRIC_NAMES``.
METRIC_LABELS: dict[str, str] = {
    "dice": "Dice",
    "iou": "IoU",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "precision": "Precision",
    "hd95_mm": "HD95 (mm)",
    "volume_diff_ml": "Volume difference (cm³)",
    "volume_error_pct": "Volume error (%)",
}

#: How each metric is shown (format spec), in the app and the PDF: overlaps to 3 decimals,
#: specificity to 4 (it sits near 1 for any tumor), distances to 0.1 mm, volumes signed.
METRIC_FORMATS: dict[str, str] = {
    "dice": ".3f",
    "iou": ".3f",
    "sensitivity": ".3f",
    "specificity": ".4f",
    "precision": ".3f",
    "hd95_mm": ".1f",
    "volume_diff_ml": "+.2f",
    "volume_error_pct": "+.1f",
}


@dataclass(frozen=True)
class RegionScores:
    """All metrics of one region of one case."""

    dice: float
    iou: float
    sensitivity: float
    specificity: float
    precision: float
    hd95_mm: float
    volume_diff_ml: float
    #: ``100 (predicted - true) / true`` volume; NaN when the truth is empty (undefined).
    volume_error_pct: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict (JSON/CSV-ready)."""
        return asdict(self)


def region_mask(labels: NDArray, region: Sequence[int]) -> NDArray[np.bool_]:
    """Boolean mask of the voxels whose label is in ``region``."""
    return np.isin(labels, region)


def _check_pair(pred: NDArray, ref: NDArray) -> None:
    if pred.shape != ref.shape:
        raise InputError(f"Prediction shape {pred.shape} differs from ground truth {ref.shape}; they must match.")


def compute_dice(pred: NDArray[np.bool_], ref: NDArray[np.bool_]) -> float:
    """Dice ``2|P & R| / (|P| + |R|)``; 1 when both are empty."""
    _check_pair(pred, ref)
    total = int(pred.sum()) + int(ref.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(pred, ref).sum()) / total


def _surface(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def compute_hd95(pred: NDArray[np.bool_], ref: NDArray[np.bool_], *, spacing_mm: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm.

    Args:
        pred: Predicted mask.
        ref: Reference mask, same shape.
        spacing_mm: Voxel size per axis in mm.

    Returns:
        0 if both are empty, ``HD95_EMPTY_MM`` if exactly one is.
    """
    _check_pair(pred, ref)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return 0.0
    if has_pred != has_ref:
        return HD95_EMPTY_MM
    # Work inside the joint bounding box (plus one voxel): same distances, far less memory.
    box = _joint_box(pred | ref, pad=1)
    pred, ref = pred[box], ref[box]
    pred_surface, ref_surface = _surface(pred), _surface(ref)
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=spacing_mm)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing_mm)
    distances = np.concatenate([to_ref[pred_surface], to_pred[ref_surface]])
    return float(np.percentile(distances, 95))


def _joint_box(mask: NDArray[np.bool_], pad: int) -> tuple[slice, ...]:
    coords = np.nonzero(mask)
    return tuple(
        slice(max(int(c.min()) - pad, 0), min(int(c.max()) + pad + 1, n))
        for c, n in zip(coords, mask.shape, strict=True)
    )


def score_region(pred: NDArray[np.bool_], ref: NDArray[np.bool_], *, spacing_mm: Sequence[float]) -> RegionScores:
    """Every metric of one binary region."""
    _check_pair(pred, ref)
    tp = int(np.logical_and(pred, ref).sum())
    fp = int(pred.sum()) - tp
    fn = int(ref.sum()) - tp
    tn = pred.size - tp - fp - fn
    union = tp + fp + fn
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    return RegionScores(
        dice=compute_dice(pred, ref),
        iou=1.0 if union == 0 else tp / union,
        sensitivity=1.0 if tp + fn == 0 else tp / (tp + fn),
        specificity=1.0 if tn + fp == 0 else tn / (tn + fp),
        precision=1.0 if tp + fp == 0 else tp / (tp + fp),
        hd95_mm=compute_hd95(pred, ref, spacing_mm=spacing_mm),
        volume_diff_ml=(int(pred.sum()) - int(ref.sum())) * voxel_ml,
        volume_error_pct=100.0 * (int(pred.sum()) - int(ref.sum())) / int(ref.sum()) if ref.any() else math.nan,
    )


def score_case(pred_labels: NDArray, ref_labels: NDArray, *, spacing_mm: Sequence[float]) -> dict[str, RegionScores]:
    """Metrics per BraTS region (WT, TC, ET) for one case's label maps."""
    _check_pair(pred_labels, ref_labels)
    return {
        name: score_region(region_mask(pred_labels, labels), region_mask(ref_labels, labels), spacing_mm=spacing_mm)
        for name, labels in BRATS_REGIONS.items()
    }


def region_volumes_ml(labels: NDArray, spacing_mm: Sequence[float]) -> dict[str, float]:
    """Volumes of NCR, ED, ET, WT and TC in cm3 (ml) from the voxel spacing."""
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    counts = np.bincount(np.asarray(labels, dtype=np.intp).ravel(), minlength=5)
    return {name: float(sum(counts[v] for v in values)) * voxel_ml for name, values in VOLUME_REGIONS.items()}


def per_slice_dice(
    pred_labels: NDArray, ref_labels: NDArray, region: Sequence[int], axis: int = 2
) -> NDArray[np.float64]:
    """Dice of one region on every slice along ``axis``; NaN where both slices are empty."""
    _check_pair(pred_labels, ref_labels)
    pred, ref = region_mask(pred_labels, region), region_mask(ref_labels, region)
    other = tuple(a for a in range(pred.ndim) if a != axis)
    inter = np.logical_and(pred, ref).sum(axis=other)
    total = pred.sum(axis=other) + ref.sum(axis=other)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), np.nan)


def confusion_matrix(
    pred_labels: NDArray, ref_labels: NDArray, labels: Sequence[int] = (0, 1, 2, 4)
) -> NDArray[np.int64]:
    """Voxel counts ``[reference label, predicted label]`` over ``labels``."""
    _check_pair(pred_labels, ref_labels)
    lut = np.full(256, len(labels), dtype=np.intp)
    for i, value in enumerate(labels):
        lut[value] = i
    n = len(labels) + 1
    ref_index = lut[np.asarray(ref_labels, dtype=np.uint8).ravel()]
    pred_index = lut[np.asarray(pred_labels, dtype=np.uint8).ravel()]
    matrix = np.bincount(ref_index * n + pred_index, minlength=n * n).reshape(n, n)
    return matrix[: len(labels), : len(labels)].astype(np.int64)


def summarise(rows: Iterable[Mapping[str, object]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean, median and sample standard deviation of each metric per region over case rows.

    Args:
        rows: Dicts with a ``region`` key and ``METRIC_NAMES`` keys (missing ones are skipped:
            CSVs written before a metric existed).

    Returns:
        ``{region: {metric: {"mean", "median", "std", "n"}}}``.
    """
    grouped: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        region = str(row["region"])
        for metric in METRIC_NAMES:
            if row.get(metric) in (None, ""):
                continue
            value = float(row[metric])  # type: ignore[arg-type]
            if not math.isnan(value):
                grouped.setdefault(region, {}).setdefault(metric, []).append(value)
    return {
        region: {
            metric: {
                "mean": float(np.mean(values)),
                "median": float(np.median(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "n": float(len(values)),
            }
            for metric, values in metrics.items()
        }
        for region, metrics in grouped.items()
    }
