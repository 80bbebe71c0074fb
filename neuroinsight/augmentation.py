"""Random training-time transforms on batches of normalised slices.

Every transform takes ``images`` float32 ``(B, H, W, C)`` (z-scored, background 0)
and ``classes`` uint8 ``(B, H, W)`` and returns transformed copies; geometric
transforms move both together (labels with nearest-neighbour), intensity
transforms touch only brain voxels (non-zero) and leave labels alone.
Randomness comes from an explicit ``numpy.random.Generator``.

Intensity transforms imitate what differs between scanners and sites (global
gain and offset, contrast curve, coil bias field, noise, a modality acquired at
lower resolution); geometric ones imitate head position and size. Modality dropout
blanks one whole modality so a network cannot lean on any single one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np
from numpy.typing import DTypeLike, NDArray


@dataclass(frozen=True)
class AugmentConfig:
    """Each transform's range; a zero range (or probability 0) turns it off.

    Attributes:
        flip_prob: Probability of a left-right flip.
        rotate_deg: Maximum absolute in-plane rotation.
        scale: Maximum relative zoom (0.1 -> factor 0.9..1.1).
        elastic_px: Standard deviation, in pixels, of random displacements drawn on a coarse 3x3
            grid and interpolated bicubically to every pixel: the elastic deformation with which
            U-Net learned from few training images (Ronneberger et al. 2015, 10 px on 572-px tiles).
        intensity_scale: Per-channel gain range (0.15 -> 0.85..1.15), applied to brain voxels.
        intensity_shift: Per-channel offset range in z-score units.
        gamma: Maximum |log gamma| of a contrast curve.
        bias_field: Strength of a smooth multiplicative field (0.2 -> up to +-20 %).
        noise_std: Maximum standard deviation of additive Gaussian noise (z units).
        blur_sigma: Maximum Gaussian blur, in pixels, drawn for each channel and axis on its
            own, so one modality can turn soft along one axis as a thick-slice or interpolated
            acquisition does (the blur augmentation of nnU-Net, Isensee et al. 2021).
        modality_dropout: Probability that one modality, drawn at random, is set to the brain's
            mean (0 after z-scoring) in a slice, so the network learns to segment from the
            others (ModDrop, Neverova et al. 2016; HeMIS, Havaei et al. 2016). Off for a single
            modality.
        carvemix: Probability that a slice receives another training patient's tumor, carved
            from a slice at a similar height together with a random margin of the tissue around
            it (CarveMix, Zhang et al. 2021: new tumor/context pairs from few patients). Done by
            the data generator, which holds the other patients' slices (:func:`carve_mix`).
        carvemix_margin_px: Largest margin, in pixels, carved around the donor's tumor.
        prob: Probability that each non-flip transform is applied to a slice (blur: to each
            channel).
    """

    flip_prob: float = 0.0
    rotate_deg: float = 0.0
    scale: float = 0.0
    elastic_px: float = 0.0
    intensity_scale: float = 0.0
    intensity_shift: float = 0.0
    gamma: float = 0.0
    bias_field: float = 0.0
    noise_std: float = 0.0
    blur_sigma: float = 0.0
    modality_dropout: float = 0.0
    carvemix: float = 0.0
    carvemix_margin_px: float = 8.0
    prob: float = 0.5

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


NO_AUGMENT = AugmentConfig()
FLIPS = AugmentConfig(flip_prob=0.5)
ROBUST = AugmentConfig(
    flip_prob=0.5,
    rotate_deg=10.0,
    scale=0.1,
    intensity_scale=0.15,
    intensity_shift=0.2,
    gamma=0.3,
    bias_field=0.2,
    noise_std=0.1,
    prob=0.3,
)
# Wider ranges, more often: the gamma shift still cost ROBUST 0.025 WT Dice (model card).
STRONG = AugmentConfig(
    flip_prob=0.5,
    rotate_deg=15.0,
    scale=0.15,
    intensity_scale=0.25,
    intensity_shift=0.3,
    gamma=0.5,
    bias_field=0.3,
    noise_std=0.15,
    prob=0.4,
)
# ROBUST plus per-channel blur, aimed at scans with one soft modality like the 2013 scans' T1;
# cross-validated on two folds it did not help (model card), so no shipped model uses it.
LOWRES = replace(ROBUST, blur_sigma=1.5)
# ROBUST plus dropping one modality in a quarter of the slices, for the four-modality model whose
# weak site (2013, soft T1) suggests it leans on one modality; cross-validated, it moved the means
# by less than a retraining does (model card), so no shipped model uses it.
MODDROP = replace(ROBUST, modality_dropout=0.25)
# Flips (the two-channel recipe's augmentation) plus elastic deformation, 3 px on 128-px slices
# (about 4 mm: the slices span the brain's bounding square); cross-validated on two folds it lost
# tumor core (model card), so no shipped model uses it.
ELASTIC = replace(FLIPS, elastic_px=3.0)
# ROBUST plus CarveMix in 30 % of the slices: with 9 training patients per fold every tumor is seen
# in one brain only; pasting it into the others multiplies the tumor/context pairs.
CARVEMIX = replace(ROBUST, carvemix=0.3)
# The two-channel recipe's flips plus the same CarveMix: the two-channel model lost WT under ROBUST's
# intensity transforms, so its CarveMix trial keeps its own augmentation otherwise.
FLIPS_CARVEMIX = replace(FLIPS, carvemix=0.3)
# ROBUST's geometric transforms without its intensity ones: ROBUST cost the two-channel recipe WT on
# 11 of 12 patients, and this separates the rotations and zooms from the contrast changes.
GEOMETRIC = replace(FLIPS, rotate_deg=ROBUST.rotate_deg, scale=ROBUST.scale, prob=ROBUST.prob)
PRESETS: dict[str, AugmentConfig] = {
    "none": NO_AUGMENT,
    "flips": FLIPS,
    "robust": ROBUST,
    "strong": STRONG,
    "lowres": LOWRES,
    "moddrop": MODDROP,
    "elastic": ELASTIC,
    "carvemix": CARVEMIX,
    "flips-carvemix": FLIPS_CARVEMIX,
    "geometric": GEOMETRIC,
}


def flip(images: NDArray, classes: NDArray) -> tuple[NDArray, NDArray]:
    """Left-right flip (the canonical x axis is the slice's first axis)."""
    return images[::-1].copy(), classes[::-1].copy()


def rotation_matrix(shape: tuple[int, int], angle_deg: float, zoom: float) -> NDArray[np.float64]:
    """The 2x3 affine matrix (OpenCV) that rotates and zooms an ``(H, W)`` slice about its centre."""
    h, w = shape
    return cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle_deg, zoom)


def rotate_scale(images: NDArray, classes: NDArray, angle_deg: float, zoom: float) -> tuple[NDArray, NDArray]:
    """Rotate and zoom one slice ``(H, W, C)`` about its centre; labels nearest-neighbour."""
    h, w = classes.shape
    matrix = rotation_matrix((h, w), angle_deg, zoom)
    warp = {"dsize": (w, h), "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
    out = cv2.warpAffine(images, matrix, flags=cv2.INTER_LINEAR, **warp).reshape(images.shape)
    lab = cv2.warpAffine(classes, matrix, flags=cv2.INTER_NEAREST, **warp)
    return out, lab


def elastic_field(shape: tuple[int, int], std_px: float, rng: np.random.Generator, grid: int = 3) -> NDArray:
    """A smooth random displacement field ``(H, W, 2)`` in pixels (x, y).

    Displacements drawn on a ``grid`` x ``grid`` lattice, interpolated bicubically, as in
    Ronneberger et al. (2015).
    """
    h, w = shape
    coarse = rng.normal(0.0, std_px, (grid, grid, 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def elastic_deform(images: NDArray, classes: NDArray, field: NDArray) -> tuple[NDArray, NDArray]:
    """Warp one slice ``(H, W, C)`` by ``field`` (:func:`elastic_field`); labels nearest-neighbour."""
    h, w = classes.shape
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = cols + field[..., 0], rows + field[..., 1]
    warp = {"borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
    out = cv2.remap(images, map_x, map_y, interpolation=cv2.INTER_LINEAR, **warp).reshape(images.shape)
    lab = cv2.remap(classes, map_x, map_y, interpolation=cv2.INTER_NEAREST, **warp)
    return out, lab


def slice_brain(images: NDArray) -> NDArray[np.bool_]:
    """Brain pixels of a prepared slice ``(H, W, C)``: non-zero in any channel.

    Preprocessing z-scores brain voxels and sets everything outside the brain to exactly 0, so a
    pixel that is 0 in every channel is background. Intensity transforms act only inside this
    mask, so the background stays 0 and the network never sees a shifted, noisy surround.
    """
    return np.any(images != 0, axis=-1)


def gain_offset(images: NDArray, brain: NDArray, gain: NDArray, offset: NDArray) -> NDArray:
    """``x * gain + offset`` per channel inside the brain."""
    return np.where(brain[..., None], images * gain + offset, 0).astype(np.float32)


def gamma_curve(images: NDArray, brain: NDArray, gammas: NDArray) -> NDArray:
    """Apply ``x -> x**gamma`` on each channel rescaled to [0, 1] within the brain, then scale back."""
    out = images.copy()
    for c, g in enumerate(gammas):
        values = images[..., c][brain]
        if values.size == 0:
            continue
        lo, hi = float(values.min()), float(values.max())
        span = hi - lo if hi > lo else 1.0
        unit = np.clip((images[..., c] - lo) / span, 0, 1)
        out[..., c] = np.where(brain, unit**g * span + lo, 0)
    return out


def bias_field(shape: tuple[int, int], strength: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """A smooth multiplicative field ``exp(p(x, y))`` with ``p`` a random 2nd-order polynomial."""
    h, w = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, w), np.linspace(-1, 1, h))
    terms = np.stack([xx, yy, xx * yy, xx**2, yy**2])
    coeffs = rng.uniform(-1, 1, size=5) * strength / 2
    return np.exp(np.tensordot(coeffs, terms, axes=1)).astype(np.float32)


def blur(images: NDArray, brain: NDArray, sigmas: NDArray) -> NDArray:
    """Gaussian blur of each channel with its own ``(sigma_rows, sigma_cols)`` in pixels (0: untouched).

    The background stays 0, so the brain's edge softens as it does in a low-resolution scan.
    """
    out = images.copy()
    for c, (sigma_rows, sigma_cols) in enumerate(sigmas):
        if sigma_rows > 0 or sigma_cols > 0:
            # OpenCV reads a zero sigma as "same as the other axis"; a tiny one leaves the axis sharp.
            smooth = cv2.GaussianBlur(
                np.ascontiguousarray(images[..., c]), (0, 0), sigmaX=sigma_cols or 1e-3, sigmaY=sigma_rows or 1e-3
            )
            out[..., c] = np.where(brain, smooth, 0)
    return out


def drop_modality(images: NDArray, channel: int, group: int = 1) -> NDArray:
    """Set modality ``channel`` (its ``group`` adjacent channels) to 0, the brain's z-scored mean."""
    out = images.copy()
    out[..., channel * group : (channel + 1) * group] = 0
    return out


def carve_mix(
    images: NDArray[np.float32],
    classes: NDArray[np.uint8],
    donor_images: NDArray[np.float32],
    donor_classes: NDArray[np.uint8],
    margin_px: float,
    *,
    min_inside: float = 0.9,
) -> tuple[NDArray[np.float32], NDArray[np.uint8]] | None:
    """Paste the donor slice's tumor, with ``margin_px`` of its surroundings, into a slice.

    CarveMix (Zhang et al., MICCAI 2021) carves the region within a distance of the donor's
    lesion and replaces the recipient's images *and labels* there, so the labels stay exact: the
    carved margin is the donor's own background. Only voxels inside both brains are replaced, so
    no tumor lands outside the recipient's brain and no hole is cut into it.

    Returns:
        The mixed slice, or None when the donor has no tumor or less than ``min_inside`` of it
        falls inside the recipient's brain (the caller then keeps the slice as it was).
    """
    tumor = donor_classes > 0
    if not tumor.any():
        return None
    brain = slice_brain(images)
    if brain[tumor].mean() < min_inside:
        return None
    distance = cv2.distanceTransform((~tumor).astype(np.uint8), cv2.DIST_L2, 5)
    carved = (distance <= margin_px) & brain & slice_brain(donor_images)
    mixed = np.where(carved[..., None], donor_images, images).astype(np.float32)
    return mixed, np.where(carved, donor_classes, classes).astype(np.uint8)


def augment_slice(
    images: NDArray[np.float32],
    classes: NDArray[np.uint8],
    config: AugmentConfig,
    rng: np.random.Generator,
    *,
    group: int = 1,
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Apply a random draw of every enabled transform to one slice ``(H, W, C)`` / ``(H, W)``.

    ``group`` adjacent channels share one intensity draw: with 2.5-D input they are one
    modality's neighbouring slices, which a scanner's contrast changes alike.
    """
    n_draws = images.shape[-1] // group

    def per_channel(values: NDArray, dtype: DTypeLike = None) -> NDArray:
        return np.repeat(values, group).astype(dtype or values.dtype)

    if config.flip_prob and rng.random() < config.flip_prob:
        images, classes = flip(images, classes)
    if (config.rotate_deg or config.scale) and rng.random() < config.prob:
        angle = rng.uniform(-config.rotate_deg, config.rotate_deg)
        zoom = 1.0 + rng.uniform(-config.scale, config.scale)
        images, classes = rotate_scale(np.ascontiguousarray(images), np.ascontiguousarray(classes), angle, zoom)
    if config.elastic_px and rng.random() < config.prob:
        field = elastic_field(classes.shape, config.elastic_px, rng)
        images, classes = elastic_deform(np.ascontiguousarray(images), np.ascontiguousarray(classes), field)
    brain = slice_brain(images)
    if (config.intensity_scale or config.intensity_shift) and rng.random() < config.prob:
        gain = 1.0 + rng.uniform(-config.intensity_scale, config.intensity_scale, n_draws)
        offset = rng.uniform(-config.intensity_shift, config.intensity_shift, n_draws)
        images = gain_offset(images, brain, per_channel(gain, np.float32), per_channel(offset, np.float32))
    if config.gamma and rng.random() < config.prob:
        images = gamma_curve(images, brain, per_channel(np.exp(rng.uniform(-config.gamma, config.gamma, n_draws))))
    if config.bias_field and rng.random() < config.prob:
        field = bias_field(classes.shape, config.bias_field, rng)
        lo = images.min()
        images = np.where(brain[..., None], (images - lo) * field[..., None] + lo, 0).astype(np.float32)
    if config.noise_std and rng.random() < config.prob:
        sigma = rng.uniform(0, config.noise_std)
        noise = rng.normal(0, sigma, images.shape).astype(np.float32)
        images = np.where(brain[..., None], images + noise, 0).astype(np.float32)
    if config.blur_sigma:
        sigmas = rng.uniform(0, config.blur_sigma, (n_draws, 2)) * (rng.random(n_draws) < config.prob)[:, None]
        images = blur(images, brain, np.repeat(sigmas, group, axis=0))
    if config.modality_dropout and n_draws > 1 and rng.random() < config.modality_dropout:
        images = drop_modality(images, int(rng.integers(n_draws)), group)
    return images.astype(np.float32, copy=False), classes
