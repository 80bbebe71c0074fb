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
from neuroinsight.preprocessing import bounding_box

#: Seed of the app's built-in demo case (bench/demo_accuracy.py scores the models on the same case).
DEMO_SEED = 7

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
    header.set_data_shape(shape)  # the LPS affine only flips axes, so the shape is unchanged
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


def _template_dir():
    """Folder of the MNI ICBM152 2009a template shipped inside nilearn's wheel (no download)."""
    from importlib.resources import files

    return files("nilearn") / "datasets" / "data"


def make_template_case(
    *,
    seed: int = 0,
    tumor_radius_mm: float = 24.0,
    tumor_center_mm: Sequence[float] = (-28.0, 8.0, 18.0),
    noise: float = 0.02,
    case_id: str | None = None,
) -> Case:
    """A demo case with real anatomy: the MNI ICBM152 2009a template plus an inserted glioma.

    The template T1 and its grey/white-matter probability maps (shipped in nilearn's
    wheel) give T1 directly and tissue-based contrasts for T1ce, T2 and FLAIR (CSF
    bright on T2, dark on FLAIR). The tumor has the BraTS structure: necrotic core
    (1), enhancing rim (4, bright on T1ce) and edema (2, bright on FLAIR/T2) that
    spreads preferentially along white matter. The brain is skull-stripped like BraTS.

    Args:
        seed: Random seed (tumor outline, noise, bias field).
        tumor_radius_mm: Outer (edema) radius; 0 gives a healthy brain.
        tumor_center_mm: Tumor centre in MNI millimetres.
        noise: Gaussian noise as a fraction of the white-matter intensity.
        case_id: Identifier (default ``demo_mni_<seed>``).

    Raises:
        InputError: nilearn (which ships the template) is not installed.
    """
    try:
        folder = _template_dir()
    except ModuleNotFoundError as err:
        raise InputError("The realistic demo case needs the nilearn package (pip install nilearn).") from err
    name = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
    t1_image = nib.load(str(folder / name.format("t1")))
    t1 = np.asarray(t1_image.dataobj, dtype=np.float32)
    grey = np.asarray(nib.load(str(folder / name.format("gm"))).dataobj, dtype=np.float32) / 255.0
    white = np.asarray(nib.load(str(folder / name.format("wm"))).dataobj, dtype=np.float32) / 255.0
    affine = np.asarray(t1_image.affine, dtype=np.float64)

    # Skull-strip: brain tissue plus the CSF it encloses (ventricles), closed and filled.
    tissue = (grey + white) > 0.3
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(tissue, iterations=3))
    brain = ndimage.binary_opening(brain, iterations=2)
    csf = np.clip(1.0 - grey - white, 0, 1) * brain

    # Crop to the brain with a margin, like a BraTS field of view.
    box = tuple(slice(max(s.start - 8, 0), s.stop + 8) for s in bounding_box(brain))
    t1, grey, white, csf, brain = (a[box] for a in (t1, grey, white, csf, brain))
    affine = affine.copy()
    affine[:3, 3] += affine[:3, :3] @ np.array([s.start for s in box])
    shape = brain.shape
    rng = np.random.default_rng(seed)

    label = np.zeros(shape, dtype=np.uint8)
    if tumor_radius_mm > 0:
        world = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1) @ affine[:3, :3].T
        world += affine[:3, 3]
        wobble = _smooth_noise(rng, shape, cells=12)
        r = np.linalg.norm(world - np.asarray(tumor_center_mm), axis=-1) / tumor_radius_mm * (1 + 0.3 * wobble)
        edema = (r < 1.0) & brain & ((white > 0.35) | (r < 0.7))
        label[edema] = 2
        label[(r < 0.5) & brain] = 4
        label[(r < 0.3) & brain] = 1

    core, rim, edema_mask = label == 1, label == 4, label == 2
    tissue_mix = {  # (csf, grey, white, edema, necrosis, enhancing) intensities per modality
        "t1": None,
        "t1ce": (60, 95, 130, 85, 45, 260),
        "t2": (250, 120, 80, 200, 230, 150),
        "flair": (25, 110, 85, 220, 120, 160),
    }
    bias = np.exp(0.08 * _smooth_noise(rng, shape, cells=3)).astype(np.float32)
    images: dict[str, NDArray[np.float32]] = {}
    for modality, levels in tissue_mix.items():
        if levels is None:  # the template's own T1, tumor darker (hypointense)
            volume = t1.copy()
            volume[edema_mask] *= 0.85
            volume[core | rim] *= 0.6
        else:
            c, g, w, e, n, en = levels
            volume = c * csf + g * grey + w * white
            volume[edema_mask] = e
            volume[core] = n
            volume[rim] = en
        volume = ndimage.gaussian_filter(volume.astype(np.float32), sigma=0.7) * bias
        scale = float(np.median(volume[white > 0.9])) if (white > 0.9).any() else 1.0
        volume += rng.normal(0, noise * scale, size=shape).astype(np.float32)
        volume[~brain] = 0
        images[modality] = np.clip(volume, 0, None).astype(np.float32)

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_zooms((1.0, 1.0, 1.0))
    header.set_sform(affine, code=4)
    header.set_qform(affine, code=4)
    return Case(
        case_id=case_id or f"demo_mni_{seed}",
        images={m: images[m] for m in MODALITIES},
        spacing_mm=(1.0, 1.0, 1.0),
        source_affine=affine,
        source_header=header,
        label=label,
        source_files=["(MNI ICBM152 2009a template with a synthetic tumor)"],
    )
