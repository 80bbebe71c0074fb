"""Simulated site shifts: how much accuracy a model loses when a scan looks different.

Users upload scans from many scanners and sites, while the BraTS cases here were all
skull-stripped, co-registered and resampled the same way. This module imitates common
differences between sites on a real case, in native space before the app's own
preprocessing, so that the whole pipeline meets them:

- ``gamma``: a different contrast curve per modality (other sequence parameters);
- ``bias``: a smooth multiplicative field of up to +-30 % (coil sensitivity left uncorrected);
- ``noise``: Rician noise inside the brain (lower field strength or a faster protocol);
- ``thick_slices``: 5 mm axial slices interpolated back to the 1 mm grid (clinical protocols);
- ``rotation``: the head turned 10 degrees in the axial plane (the label map turns with it).

A global gain or offset per modality is not among them: the brain z-score removes it
exactly. Fold models of a cross-validation are scored on their own test patients under
each shift, so training recipes (e.g. with and without robustness augmentation,
:mod:`neuroinsight.augmentation`) can be compared on what they are meant to withstand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from neuroinsight import io
from neuroinsight.errors import InputError
from neuroinsight.inference import DEFAULT_POSTPROCESS, DEFAULT_PRECISION, Segmenter, read_model_info
from neuroinsight.metrics import score_case
from neuroinsight.pipeline import score_rows
from neuroinsight.preprocessing import brain_mask

#: Strength of each shift, chosen beyond the ranges of the "robust" training augmentation
#: (gamma |log| 0.3, bias 20 %, noise 0.1 SD, rotation 10 degrees) where a site could be.
LOG_GAMMA = 0.4
BIAS_STRENGTH = 0.3
NOISE_SD = 0.15  # in units of each modality's brain standard deviation
SLICE_THICKNESS = 5
ROTATION_DEG = 10.0


def _gamma(images: dict[str, NDArray], brain: NDArray, rng: np.random.Generator) -> dict[str, NDArray]:
    out = {}
    for name, volume in images.items():
        log_gamma = LOG_GAMMA * rng.choice((-1.0, 1.0))
        values = np.clip(volume.astype(np.float32), 0, None)
        top = float(np.percentile(values[brain], 99.5)) or 1.0
        out[name] = top * (values / top) ** np.exp(log_gamma)
    return out


def _bias(images: dict[str, NDArray], brain: NDArray, rng: np.random.Generator) -> dict[str, NDArray]:
    # One field for every modality: the receive coil is the same for all sequences.
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in brain.shape), indexing="ij")
    terms = (x, y, z, x * y, x * z, y * z, x * x, y * y, z * z)
    log_field = sum(c * t for c, t in zip(rng.uniform(-1, 1, len(terms)), terms, strict=True))
    # Scaled so that its largest excursion inside the brain is a factor 1.3 (or 1/1.3).
    log_field *= np.log1p(BIAS_STRENGTH) / float(np.abs(log_field[brain]).max())
    field = np.exp(log_field)
    return {name: volume * field for name, volume in images.items()}


def _noise(images: dict[str, NDArray], brain: NDArray, rng: np.random.Generator) -> dict[str, NDArray]:
    out = {}
    for name, volume in images.items():
        values = volume.astype(np.float32)
        sigma = NOISE_SD * float(values[brain].std())
        real = values + rng.normal(0, sigma, values.shape).astype(np.float32)
        imaginary = rng.normal(0, sigma, values.shape).astype(np.float32)
        out[name] = np.hypot(real, imaginary)
    return out


def _thick_slices(images: dict[str, NDArray], brain: NDArray, rng: np.random.Generator) -> dict[str, NDArray]:
    out = {}
    for name, volume in images.items():
        values = volume.astype(np.float32)
        # Each thick slice averages SLICE_THICKNESS thin ones; linear interpolation brings it back.
        thick = ndimage.uniform_filter1d(values, SLICE_THICKNESS, axis=2)[:, :, SLICE_THICKNESS // 2 :: SLICE_THICKNESS]
        zoom = values.shape[2] / thick.shape[2]
        out[name] = ndimage.zoom(thick, (1, 1, zoom), order=1, grid_mode=True, mode="nearest")[:, :, : values.shape[2]]
    return out


#: Intensity shifts: ``(images, brain mask, rng) -> images``; ``apply_shift`` keeps the background at 0.
SHIFTS: dict[str, Callable[[dict[str, NDArray], NDArray, np.random.Generator], dict[str, NDArray]]] = {
    "gamma": _gamma,
    "bias": _bias,
    "noise": _noise,
    "thick_slices": _thick_slices,
}
SHIFT_NAMES = ("none", *SHIFTS, "rotation")


def _check_names(shifts: Sequence[str]) -> None:
    unknown = [s for s in shifts if s not in SHIFT_NAMES]
    if unknown:
        raise InputError(f"Unknown shift {', '.join(map(repr, unknown))}; choose from {', '.join(SHIFT_NAMES)}.")


def apply_shift(case: io.Case, shift: str, *, seed: int = 0) -> io.Case:
    """A copy of ``case`` as a scan from a site that differs by ``shift`` (one of ``SHIFT_NAMES``).

    Intensity shifts leave the label map as it is; ``rotation`` turns images and label
    together (labels nearest-neighbour). ``seed`` fixes the random parts (signs of the
    gamma exponents, the bias field, the noise).
    """
    _check_names([shift])
    if shift == "none":
        return case
    if shift == "rotation":
        turn = {"angle": ROTATION_DEG, "axes": (0, 1), "reshape": False}
        images = {
            m: np.clip(ndimage.rotate(v.astype(np.float32), order=1, **turn), 0, None) for m, v in case.images.items()
        }
        label = None if case.label is None else ndimage.rotate(case.label, order=0, **turn)
        return replace(case, images=images, label=label)
    brain = brain_mask(case.images)
    shifted = SHIFTS[shift](case.images, brain, np.random.default_rng(seed))
    # Skull-stripped input has an empty background; no shift may put signal there.
    return replace(case, images={m: np.where(brain, v, 0).astype(np.float32) for m, v in shifted.items()})


def evaluate_shifts(
    model_paths: Sequence[Path],
    data_dir: Path,
    shifts: Sequence[str] = SHIFT_NAMES,
    *,
    partners: Sequence[Path] = (),
    tta: bool = False,
    precision: str = DEFAULT_PRECISION,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, object]]:
    """Score each model on its own test patients (``split.test`` in its JSON) under every shift.

    Returns one row per (model, shift, case, region) with the metric columns of
    :func:`neuroinsight.metrics.score_case` plus ``preset`` (the model's recipe), ``fold``
    and ``shift``; the default decoding and post-processing (``DEFAULT_POSTPROCESS``).
    With ``partners`` (one per model, the same fold of another recipe) each model runs as an
    ensemble with its partner (:meth:`Segmenter.ensemble`), named ``"<recipe> & <recipe>"``.
    """
    _check_names(shifts)
    if partners and len(partners) != len(model_paths):
        raise InputError(f"{len(partners)} ensemble partners for {len(model_paths)} models: give one per model.")
    folders = {p.name: p for p in io.list_cases(data_dir)}
    rows: list[dict[str, object]] = []
    for index, path in enumerate(model_paths):
        info = read_model_info(path)
        test_ids = info.get("split", {}).get("test") or []
        if not test_ids:
            raise InputError(f"{path} has no test patients in its JSON (train it with a split, e.g. by crossval).")
        missing = [c for c in test_ids if c not in folders]
        if missing:
            raise InputError(f"Test patients of {path} not in {data_dir}: {', '.join(missing)}.")
        segmenter = Segmenter.from_path(path, precision=precision)
        preset = info.get("preset", path.stem)
        if partners:
            partner = partners[index]
            partner_info = read_model_info(partner)
            if sorted(partner_info.get("split", {}).get("test") or []) != sorted(test_ids):
                raise InputError(f"{partner} and {path} have different test patients: pair models of the same fold.")
            segmenter = Segmenter.ensemble([segmenter, Segmenter.from_path(partner, precision=precision)])
            preset = f"{preset} & {partner_info.get('preset', partner.stem)}"
        for case_id in test_ids:
            case = io.load_case(folders[case_id])
            for shift in shifts:
                shifted = apply_shift(case, shift, seed=seed)
                labels = segmenter.segment(shifted, tta=tta, attention=False, post=DEFAULT_POSTPROCESS).labels
                scores = score_case(labels, shifted.label, spacing_mm=case.spacing_mm)
                rows += score_rows(
                    case_id, scores, segmenter.name, preset=preset, fold=info.get("fold", ""), shift=shift
                )
        if progress is not None:
            progress(f"{path.name}: {', '.join(test_ids)}")
    return rows
