"""Deterministic synthetic BraTS-like cases for tests, benchmarks and offline demos.

A phantom is an ellipsoidal brain (white matter inside, a grey-matter shell,
two ventricles) with an optional tumor: necrotic core (label 1), enhancing rim
(label 4, bright on T1ce), surrounding edema (label 2, bright on FLAIR and T2).
Intensities mimic the ranges of BraTS scans; a smooth bias field and Gaussian
noise make it less ideal. The same ``seed`` always gives the same case.

The case comes back exactly as :func:`neuroinsight.io.load_case` would return it
(canonical arrays, a BraTS-like LPS source affine), so it can be used directly
or written as a BraTS folder with :func:`neuroinsight.io.save_case`.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from neuroinsight.errors import InputError
from neuroinsight.io import MODALITIES, Case

# Mean intensity per tissue and modality: (t1, t1ce, t2, flair).
_TISSUE_INTENSITY: dict[str, tuple[float, float, float, float]] = {
    "white": (600, 550, 350, 300),
    "grey": (450, 420, 500, 400),
    "csf": (200, 150, 1400, 100),
    "edema": (380, 380, 1000, 800),
    "necrosis": (250, 250, 1200, 500),
    "enhancing": (450, 1100, 700, 650),
}


def _ellipsoid(grid: Sequence[NDArray], center: Sequence[float], radii: Sequence[float]) -> NDArray[np.float32]:
    """Normalised squared distance: < 1 inside the ellipsoid."""
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii, strict=True)).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], cells: int) -> NDArray[np.float32]:
    """Smooth random field in [-1, 1]: coarse noise on a ``cells^3`` grid, interpolated up."""
    coarse = rng.uniform(-1, 1, size=(cells + 1,) * 3)
    return (
        ndimage.zoom(coarse, [n / (cells + 1) for n in shape], order=1, grid_mode=True, mode="nearest")[
            tuple(slice(0, n) for n in shape)
        ]
        .astype(np.float32)
        .clip(-1, 1)
    )


def make_case(
    *,
    seed: int = 0,
    shape: Sequence[int] = (240, 240, 155),
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
    tumor_radius_mm: float = 22.0,
    tumor_offset: Sequence[float] = (0.35, 0.15, 0.1),
    noise: float = 0.03,
    case_id: str | None = None,
) -> Case:
    """Build a synthetic case.

    Args:
        seed: Random seed (noise, tumor shape irregularity, bias field).
        shape: Volume size ``(x, y, z)`` in voxels (each 16..512).
        spacing_mm: Voxel size in mm.
        tumor_radius_mm: Outer (edema) radius; 0 gives a healthy brain.
        tumor_offset: Tumor centre relative to the brain's semi-axes (-1..1 per axis).
        noise: Gaussian noise as a fraction of the white-matter intensity.
        case_id: Identifier (default ``phantom_<seed>``, ``_notumor`` for a healthy one).

    Returns:
        A :class:`~neuroinsight.io.Case` with all four modalities and ground truth.
    """
    shape = tuple(int(s) for s in shape)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if len(shape) != 3 or any(s < 16 or s > 512 for s in shape):
        raise InputError(f"phantom shape must be three sizes between 16 and 512, got {shape}.")
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    extent = np.asarray(shape) * spacing
    brain_radii = extent * np.array([0.36, 0.42, 0.40])
    head = _ellipsoid(grid, (0, 0, 0), brain_radii)
    brain = head < 1
    white = head < 0.72
    ventricle_radii = brain_radii * np.array([0.12, 0.30, 0.18])
    csf = np.zeros(shape, dtype=bool)
    for side in (-1, 1):
        csf |= _ellipsoid(grid, (side * brain_radii[0] * 0.14, 0, brain_radii[2] * 0.05), ventricle_radii) < 1

    label = np.zeros(shape, dtype=np.uint8)
    if tumor_radius_mm > 0:
        center = np.asarray(tumor_offset) * brain_radii
        # Irregular outline: perturb the radius with smooth noise.
        wobble = _smooth_noise(rng, shape, cells=6)
        r = np.sqrt(_ellipsoid(grid, center, (tumor_radius_mm,) * 3)) * (1 + 0.25 * wobble)
        label[(r < 1.0) & brain] = 2
        label[(r < 0.55) & brain] = 4
        label[(r < 0.35) & brain] = 1

    images: dict[str, NDArray[np.float32]] = {}
    bias = np.exp(0.1 * _smooth_noise(rng, shape, cells=3)).astype(np.float32)
    tissues = {
        "grey": brain & ~white,
        "white": white,
        "csf": csf,
        "edema": label == 2,
        "necrosis": label == 1,
        "enhancing": label == 4,
    }
    for index, modality in enumerate(MODALITIES):
        volume = np.zeros(shape, dtype=np.float32)
        for tissue, mask in tissues.items():  # later tissues overwrite earlier ones
            volume[mask] = _TISSUE_INTENSITY[tissue][index]
        volume = ndimage.gaussian_filter(volume, sigma=0.8)
        volume *= bias
        volume += rng.normal(0, noise * _TISSUE_INTENSITY["white"][index], size=shape).astype(np.float32)
        volume[~brain] = 0
        images[modality] = np.clip(volume, 0, None).astype(np.float32)

    # A BraTS-like LPS source affine, so orientation handling is exercised.
    source_affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    source_affine[:3, 3] = [0.0, (shape[1] - 1) * spacing[1], 0.0]
    header = nib.Nifti1Header()
    header.set_data_shape(_source_shape(shape, source_affine))
    header.set_zooms(tuple(float(s) for s in spacing))
    header.set_sform(source_affine, code=1)
    header.set_qform(source_affine, code=1)
    default_id = f"phantom_{seed}" if tumor_radius_mm > 0 else f"phantom_{seed}_notumor"
    return Case(
        case_id=case_id or default_id,
        images=images,
        spacing_mm=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        source_affine=source_affine,
        source_header=header,
        label=label,
        source_files=["(synthetic phantom)"],
    )


def _source_shape(shape: tuple[int, ...], affine: NDArray) -> tuple[int, ...]:
    # Flips keep the shape; only axis permutations would change it, and this affine has none.
    del affine
    return shape
