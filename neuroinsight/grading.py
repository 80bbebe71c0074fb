"""HGG/LGG probability from the segmentation and the images: a small, transparent model.

Features (:func:`grade_features`) describe what a radiologist looks at: how large
the tumor is, whether and how much of the core enhances, how bright the core is
on T1ce and the edema on FLAIR relative to the brain, and the tumor's extent.
A standardised L2 logistic regression (scikit-learn) maps them to P(HGG). The
fitted model is stored as plain JSON numbers (never a pickle) and evaluated
with numpy alone.

Caveat shown to users: the shipped classifier is fitted on the 12 shared BraTS
cases (10 HGG, 2 LGG) from their ground-truth label maps; its leave-one-patient-out
AUC and balanced accuracy rest on two LGG patients and are very uncertain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neuroinsight.errors import InputError
from neuroinsight.metrics import region_volumes_ml
from neuroinsight.preprocessing import bounding_box, brain_mask, zscore

FEATURE_NAMES: tuple[str, ...] = (
    "log_wt_ml",
    "log_tc_ml",
    "log_et_ml",
    "et_fraction_of_tc",
    "ncr_fraction_of_tc",
    "tc_fraction_of_wt",
    "t1ce_z_in_tc",
    "t1ce_z_in_et",
    "flair_z_in_ed",
    "wt_extent_mm",
)
CAVEAT = (
    "Grade probability from a logistic model fitted on 12 BraTS cases (10 HGG, 2 LGG); "
    "its cross-validated accuracy is very uncertain. Research and teaching only, not a diagnosis."
)


def _mean_in(volume: NDArray, mask: NDArray[np.bool_]) -> float:
    return float(volume[mask].mean()) if mask.any() else 0.0


def grade_features(labels: NDArray, images: Mapping[str, NDArray], spacing_mm: Sequence[float]) -> dict[str, float]:
    """Grade features of one case.

    Args:
        labels: BraTS label map ``(X, Y, Z)`` (prediction or ground truth).
        images: Canonical volumes; ``t1ce`` and ``flair`` are used.
        spacing_mm: Voxel size in mm.
    """
    volumes = region_volumes_ml(labels, spacing_mm)
    brain = brain_mask(images)
    t1ce = zscore(np.clip(images["t1ce"], 0, None), brain)
    flair = zscore(np.clip(images["flair"], 0, None), brain)
    tc = np.isin(labels, (1, 4))
    wt = labels > 0
    extent = 0.0
    if wt.any():
        box = bounding_box(wt)
        extent = float(max((s.stop - s.start) * d for s, d in zip(box, spacing_mm, strict=True)))
    return {
        "log_wt_ml": float(np.log1p(volumes["WT"])),
        "log_tc_ml": float(np.log1p(volumes["TC"])),
        "log_et_ml": float(np.log1p(volumes["ET"])),
        "et_fraction_of_tc": volumes["ET"] / volumes["TC"] if volumes["TC"] > 0 else 0.0,
        "ncr_fraction_of_tc": volumes["NCR"] / volumes["TC"] if volumes["TC"] > 0 else 0.0,
        "tc_fraction_of_wt": volumes["TC"] / volumes["WT"] if volumes["WT"] > 0 else 0.0,
        "t1ce_z_in_tc": _mean_in(t1ce, tc),
        "t1ce_z_in_et": _mean_in(t1ce, labels == 4),
        "flair_z_in_ed": _mean_in(flair, labels == 2),
        "wt_extent_mm": extent,
    }


@dataclass(frozen=True)
class GradeModel:
    """Standardised logistic regression: ``P(HGG) = sigmoid(w . (x - mean) / scale + b)``."""

    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float
    evaluation: dict

    def predict_proba(self, features: Mapping[str, float]) -> float:
        """P(HGG) in [0, 1] for one case's features."""
        x = np.array([features[name] for name in self.feature_names], dtype=np.float64)
        z = (x - np.array(self.mean)) / np.array(self.scale)
        logit = float(np.dot(self.weights, z) + self.intercept)
        return float(1.0 / (1.0 + np.exp(-logit)))

    def to_json(self) -> str:
        """Plain-number JSON."""
        return json.dumps(
            {
                "kind": "standardised logistic regression, P(HGG)",
                "feature_names": list(self.feature_names),
                "mean": list(self.mean),
                "scale": list(self.scale),
                "weights": list(self.weights),
                "intercept": self.intercept,
                "evaluation": self.evaluation,
                "caveat": CAVEAT,
            },
            indent=2,
        )


def load_grade_model(path: str | Path) -> GradeModel:
    """Read a classifier written by :meth:`GradeModel.to_json` (JSON only; nothing is executed)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Grade classifier {path} not found. Fit one with `python -m neuroinsight fit-grader`.")
    data = json.loads(path.read_text())
    try:
        return GradeModel(
            feature_names=tuple(str(n) for n in data["feature_names"]),
            mean=tuple(float(v) for v in data["mean"]),
            scale=tuple(float(v) for v in data["scale"]),
            weights=tuple(float(v) for v in data["weights"]),
            intercept=float(data["intercept"]),
            evaluation=dict(data.get("evaluation", {})),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path.name}: not a valid grade classifier ({err}).") from err


def _fit(x: NDArray, y: NDArray, c: float) -> GradeModel:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
    clf.fit((x - mean) / scale, y)
    return GradeModel(FEATURE_NAMES, tuple(mean), tuple(scale), tuple(clf.coef_[0]), float(clf.intercept_[0]), {})


def fit_grade_model(features: Sequence[Mapping[str, float]], grades: Sequence[str], *, c: float = 0.5) -> GradeModel:
    """Fit on all cases and attach leave-one-patient-out AUC and balanced accuracy.

    Args:
        features: One :func:`grade_features` dict per patient.
        grades: ``"HGG"`` or ``"LGG"`` per patient.
        c: Inverse L2 strength (small data: keep it regularised).
    """
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    y = np.array([1 if g == "HGG" else 0 for g in grades])
    if len(set(y)) < 2:
        raise InputError("Fitting a grade model needs both HGG and LGG cases.")
    x = np.array([[f[name] for name in FEATURE_NAMES] for f in features], dtype=np.float64)
    held_out = np.zeros(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        if len(set(y[keep])) < 2:
            held_out[i] = 0.5
            continue
        model = _fit(x[keep], y[keep], c)
        held_out[i] = model.predict_proba(dict(zip(FEATURE_NAMES, x[i], strict=True)))
    final = _fit(x, y, c)
    evaluation = {
        "method": "leave-one-patient-out",
        "n_cases": len(y),
        "n_hgg": int(y.sum()),
        "n_lgg": int(len(y) - y.sum()),
        "auc": float(roc_auc_score(y, held_out)),
        "balanced_accuracy": float(balanced_accuracy_score(y, held_out >= 0.5)),
        "held_out_probabilities": [round(float(p), 4) for p in held_out],
        "features_from": "ground-truth label maps",
        "regularisation_C": c,
    }
    return GradeModel(final.feature_names, final.mean, final.scale, final.weights, final.intercept, evaluation)
