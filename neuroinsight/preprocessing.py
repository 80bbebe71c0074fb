"""Array-to-array steps shared by training and inference, so the two never drift apart.

All inputs are canonical ``(x, y, z)`` volumes from :mod:`neuroinsight.io`. The
network sees axial slices: ``prepare_volume`` returns ``(z, S, S, C)`` float32
stacks, channels last in the order of ``PreprocessConfig.modalities``. With
``context`` k > 0 each modality contributes its slice and the k slices on either
side (2.5-D input), so the network sees some of the tumor's extent in z.
With ``plane="coronal"`` the volume is first resliced (:func:`to_plane`) so that
the same steps read coronal slices instead: a model of another view, whose
errors differ from an axial model's (multi-view ensembles).

Two pipelines are provided as settings:

* ``SEED_PREPROCESS`` is the seed notebook as written: T1ce + FLAIR, z-score over
  *all* voxels of the volume, the whole 240x240 plane resized to 128x128, training
  slices 50..130.
* ``DEFAULT_PREPROCESS`` (what the shipped models use): z-score over *brain*
  voxels with the background kept at 0 (so the share of empty background, which
  varies between sites and with the field of view, does not change the scale),
  the plane cropped to the brain's bounding square before resizing (more voxels
  on the brain, and brain size normalised across sites), every slice that
  contains brain used for training.

The brain mask is the union of non-zero voxels over all modalities. Resampled
scans carry small negative values at the brain edge (interpolation ringing of a
non-negative signal); they are clipped to 0 before normalisation and counted as
brain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Literal

import cv2
import numpy as np
from numpy.typing import DTypeLike, NDArray

from neuroinsight.errors import InputError

N_CLASSES = 4
#: Model class index -> BraTS label (class 3 is enhancing tumor, label 4).
CLASS_TO_LABEL: tuple[int, ...] = (0, 1, 2, 4)


#: Axis order that puts each slicing plane's normal last, where the pipeline slices. Both keep
#: the left-right axis first, so the flips of augmentation and TTA stay left-right mirrors.
#: Sagittal slices are left out: their in-plane flip would mirror front and back.
PLANE_AXES: dict[str, tuple[int, int, int]] = {"axial": (0, 1, 2), "coronal": (0, 2, 1)}


def to_plane(volume: NDArray, plane: str) -> NDArray:
    """View a canonical ``(x, y, z, ...)`` array with ``plane``'s slices along the third axis."""
    axes = PLANE_AXES[plane]
    return volume if plane == "axial" else volume.transpose(*axes, *range(3, volume.ndim))


def from_plane(volume: NDArray, plane: str) -> NDArray:
    """Inverse of :func:`to_plane`: a view on the canonical ``(x, y, z, ...)`` grid."""
    inverse = tuple(int(i) for i in np.argsort(PLANE_AXES[plane]))
    return volume if plane == "axial" else volume.transpose(*inverse, *range(3, volume.ndim))


def slices_per_modality(context: int) -> int:
    """Input channels one modality contributes: its slice and ``context`` neighbours on either side."""
    return 2 * context + 1


@dataclass(frozen=True)
class PreprocessConfig:
    """How a case becomes network input.

    Attributes:
        modalities: Input channels, in order (``("t1ce", "flair")`` for the seed model).
        image_size: Side of the square network input in pixels.
        normalization: ``"brain"`` (z-score over brain voxels, background 0) or ``"volume"``.
        crop_to_brain: Crop each volume to the brain's bounding square before resizing.
        slice_range: Training slices ``[start, stop)`` along z, or None for every slice with brain.
        crop_margin: Voxels added around the brain's bounding box.
        context: Neighbouring slices on each side stacked as extra channels (0: plain 2-D input);
            each modality's ``2 * context + 1`` slices are adjacent, in z order.
        plane: Slicing plane, a key of :data:`PLANE_AXES` (the seed's: ``axial``).
    """

    modalities: tuple[str, ...] = ("t1ce", "flair")
    image_size: int = 128
    normalization: Literal["brain", "volume"] = "brain"
    crop_to_brain: bool = True
    slice_range: tuple[int, int] | None = None
    crop_margin: int = 4
    context: int = 0
    plane: str = "axial"

    def __post_init__(self) -> None:
        if self.context < 0:
            raise InputError(f"context must be 0 or more slices, got {self.context}.")
        if self.plane not in PLANE_AXES:
            raise InputError(f"plane must be one of {', '.join(PLANE_AXES)}, got {self.plane!r}.")

    @property
    def n_channels(self) -> int:
        """Network input channels: ``2 * context + 1`` slices per modality."""
        return len(self.modalities) * slices_per_modality(self.context)

    def channel_indices(self, modalities: Sequence[str]) -> list[int]:
        """Input channels (of this config's layout) that carry ``modalities``, in their order."""
        width = slices_per_modality(self.context)
        return [self.modalities.index(m) * width + d for m in modalities for d in range(width)]

    def to_dict(self) -> dict:
        """JSON-ready form (stored beside a model); an axial model's omits ``plane``, as
        models trained before the setting existed do (their slice caches stay valid)."""
        data = asdict(self)
        if data["plane"] == "axial":
            del data["plane"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["modalities"] = tuple(values["modalities"])
        if values.get("slice_range") is not None:
            values["slice_range"] = tuple(values["slice_range"])
        return cls(**values)


_MASK_SLAB = 16  # planes per step of brain_mask: ~1 MB of temporaries

SEED_PREPROCESS = PreprocessConfig(normalization="volume", crop_to_brain=False, slice_range=(50, 130))
DEFAULT_PREPROCESS = PreprocessConfig()


@dataclass(frozen=True)
class CropBox:
    """In-plane window ``[x0, x0 + size_x) x [y0, y0 + size_y)``; may reach past the volume (zero padded)."""

    x0: int
    y0: int
    size_x: int
    size_y: int

    def crop(self, volume: NDArray, dtype: DTypeLike = None) -> NDArray:
        """Cut the window out of ``(X, Y, ...)``, padding with zeros outside the volume.

        ``dtype`` converts on the way (default: the volume's own).
        """
        out = np.zeros((self.size_x, self.size_y, *volume.shape[2:]), dtype=dtype or volume.dtype)
        src, dst = self._overlap(volume.shape[:2])
        out[dst] = volume[src]
        return out

    def uncrop(self, window: NDArray, full_xy: tuple[int, int], fill: float = 0) -> NDArray:
        """Place a window back into an ``(X, Y, ...)`` array filled with ``fill``."""
        out = np.full((*full_xy, *window.shape[2:]), fill, dtype=window.dtype)
        src, dst = self._overlap(full_xy)
        out[src] = window[dst]
        return out

    def _overlap(self, full_xy: tuple[int, ...]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        x_lo, y_lo = max(self.x0, 0), max(self.y0, 0)
        x_hi, y_hi = min(self.x0 + self.size_x, full_xy[0]), min(self.y0 + self.size_y, full_xy[1])
        volume_part = (slice(x_lo, x_hi), slice(y_lo, y_hi))
        window_part = (slice(x_lo - self.x0, x_hi - self.x0), slice(y_lo - self.y0, y_hi - self.y0))
        return volume_part, window_part


@dataclass
class PreparedVolume:
    """Network-ready slices of one case and what is needed to invert the preprocessing.

    Attributes:
        channels: float32 ``(C, z, S, S)``, normalised and resized, one plane stack per modality
            (kept apart so a batch is assembled from cache-sized pieces, never the whole stack).
        has_brain: bool ``(z,)``, True where the slice contains any brain voxel.
        box: The in-plane crop applied before resizing.
        full_shape: ``(X, Y, Z)`` shape of the case, in ``plane``'s axis order (:func:`to_plane`).
        brain: bool brain mask of that shape.
        context: Neighbouring slices per side that :meth:`batch` stacks beside each slice
            (beyond the volume's ends the end slice is repeated).
        plane: The slicing plane; ``z`` above means its slice axis.
    """

    channels: NDArray[np.float32]
    has_brain: NDArray[np.bool_]
    box: CropBox
    full_shape: tuple[int, int, int]
    brain: NDArray[np.bool_] = field(repr=False)
    context: int = 0
    plane: str = "axial"

    @property
    def canonical_brain(self) -> NDArray[np.bool_]:
        """The brain mask on the case's canonical ``(x, y, z)`` grid."""
        return from_plane(self.brain, self.plane)

    @property
    def n_channels(self) -> int:
        """Channels of a :meth:`batch`: ``2 * context + 1`` slices per modality."""
        return self.channels.shape[0] * slices_per_modality(self.context)

    @cached_property
    def slices(self) -> NDArray[np.float32]:
        """All slices channels-last, float32 ``(z, S, S, C)`` (built on first use)."""
        return self.batch(slice(None))

    def batch(self, index: NDArray[np.intp] | slice, out: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
        """The slices ``index`` channels-last, float32 ``(n, S, S, C)``, as the network takes them.

        ``out`` (a reused buffer) saves allocating fresh memory for every batch.
        """
        _, depth, rows, cols = self.channels.shape
        selectors: list[NDArray[np.intp] | slice]
        if self.context:  # each modality's neighbours, z order, the end slices repeated past the ends
            planes = np.arange(depth)[index]
            selectors = [np.clip(planes + d, 0, depth - 1) for d in range(-self.context, self.context + 1)]
        elif not isinstance(index, slice) and len(index) and np.array_equal(index, np.arange(index[0], index[-1] + 1)):
            selectors = [slice(index[0], index[-1] + 1)]  # consecutive slices (the usual batch): views, no gather
        else:
            selectors = [index]
        parts = [np.ascontiguousarray(channel[z]).reshape(-1, cols) for channel in self.channels for z in selectors]
        n_channels = len(parts)
        n = len(parts[0]) // rows
        if out is None:
            out = np.empty((n, rows, cols, n_channels), dtype=np.float32)
        if n == 0:
            return out
        # OpenCV interleaves planes ~6x faster than np.stack(axis=-1).
        if out.flags.c_contiguous:
            cv2.merge(parts, dst=out.reshape(n * rows, cols, n_channels))
        else:  # OpenCV writes only into contiguous memory
            out[...] = cv2.merge(parts).reshape(out.shape)
        return out


def brain_mask(images: Mapping[str, NDArray], pool: Executor | None = None) -> NDArray[np.bool_]:
    """Union of non-zero voxels over all modalities, bool ``(X, Y, Z)``; ``pool`` runs it in parallel.

    Computed in slabs of axial planes into one array, so no full-size temporaries are made
    (each would be fresh memory: page faults cost more than the comparisons).
    """
    volumes = list(images.values())
    # Canonical volumes are usually flipped views of the file's array; NumPy compares along
    # negative strides ~3.5x slower, so the work runs on the unflipped arrays (same result).
    axes = tuple(i for i, stride in enumerate(volumes[0].strides) if stride < 0)
    unflipped = [np.flip(volume, axes) for volume in volumes]
    mask = np.empty_like(unflipped[0], dtype=bool)  # same memory layout as the volumes
    slowest = int(np.argmax(mask.strides))  # slabs across the slowest-varying axis are contiguous

    def fill(start: int) -> None:
        part = (slice(None),) * slowest + (slice(start, start + _MASK_SLAB),)
        out = mask[part]
        np.not_equal(unflipped[0][part], 0, out=out)
        for volume in unflipped[1:]:
            np.logical_or(out, volume[part] != 0, out=out)

    list((pool.map if pool is not None else map)(fill, range(0, mask.shape[slowest], _MASK_SLAB)))
    return np.flip(mask, axes)


#: Above either, the "brain" mask (non-zero voxels) cannot be a skull-stripped brain: adult brains
#: are 1.0-1.8 L (the 12 shared cases: 1.17-1.73 L, 13-19 % of their grid), and even an ellipsoid
#: filling its bounding box covers only 52 % of it.
MAX_BRAIN_ML = 2500.0
MAX_BRAIN_FRACTION = 0.6


def skull_strip_warning(mask: NDArray[np.bool_], voxel_volume_ml: float) -> str | None:
    """A sentence for users when the non-zero region is too large to be a skull-stripped brain.

    The models were trained on skull-stripped BraTS scans; on a head with skull, scalp or a
    noisy background they segment outside the brain. This catches the commonest upload of
    the wrong kind of scan without refusing it (the user may know better).
    """
    voxels = np.count_nonzero(mask)
    volume_ml, fraction = voxels * voxel_volume_ml, voxels / mask.size
    if volume_ml <= MAX_BRAIN_ML and fraction <= MAX_BRAIN_FRACTION:
        return None
    return (
        f"This scan does not look skull-stripped: {volume_ml / 1000:.1f} L ({fraction:.0%} of the volume) is "
        "non-zero, more than any brain. The models were trained on skull-stripped BraTS scans (brain only, "
        "background 0) and may mark tumor outside the brain here. Skull-strip it first (for example with "
        "HD-BET or SynthStrip) and load it again."
    )


def zscore(volume: NDArray, mask: NDArray[np.bool_] | None = None) -> NDArray[np.float32]:
    """Z-score ``(x - mean) / std``.

    Args:
        volume: Intensities, any shape.
        mask: Voxels to take the statistics from; voxels outside are set to 0.
            None uses every voxel (the seed's choice).
    """
    volume = volume.astype(np.float32, copy=False)
    values = volume if mask is None else volume[mask]
    if values.size == 0:
        return np.zeros_like(volume)
    std = float(values.std())
    out = (volume - float(values.mean())) / (std if std > 0 else 1.0)
    if mask is not None:
        out[~mask] = 0.0
    return out.astype(np.float32, copy=False)


def labels_to_classes(label: NDArray) -> NDArray[np.uint8]:
    """BraTS labels ``{0, 1, 2, 4}`` -> contiguous classes ``{0, 1, 2, 3}`` (label 4 -> 3)."""
    classes = np.asarray(label, dtype=np.uint8).copy()
    classes[classes == 4] = 3
    return classes


def classes_to_labels(classes: NDArray) -> NDArray[np.uint8]:
    """Inverse of :func:`labels_to_classes` (class 3 -> label 4)."""
    return np.asarray(CLASS_TO_LABEL, dtype=np.uint8)[np.asarray(classes, dtype=np.intp)]


def one_hot(classes: NDArray, n_classes: int = N_CLASSES) -> NDArray[np.float32]:
    """``(...,)`` integer classes -> ``(..., n_classes)`` float32 one-hot."""
    return np.eye(n_classes, dtype=np.float32)[np.asarray(classes, dtype=np.intp)]


def brain_box(mask: NDArray[np.bool_], margin: int) -> CropBox:
    """Smallest square around the brain in the axial plane, plus ``margin`` voxels."""
    if not mask.any():
        return CropBox(0, 0, mask.shape[0], mask.shape[1])
    xs, ys, _ = bounding_box(mask)
    side = max(xs.stop - xs.start, ys.stop - ys.start) + 2 * margin
    cx, cy = (xs.start + xs.stop) // 2, (ys.start + ys.stop) // 2
    return CropBox(int(cx - side // 2), int(cy - side // 2), int(side), int(side))


def bounding_box(mask: NDArray) -> tuple[slice, slice, slice]:
    """Smallest box around the non-zero voxels of a non-empty 3-D array.

    Taken from the array's projections: ``ndimage.find_objects`` takes ~40x longer on a
    Fortran-ordered volume, the layout of label maps here.
    """
    z = np.nonzero(mask.any(axis=(0, 1)))[0]
    in_plane = mask[:, :, z[0] : z[-1] + 1].any(axis=2)  # one pass over the slab, then 2-D work
    x, y = np.nonzero(in_plane.any(axis=1))[0], np.nonzero(in_plane.any(axis=0))[0]
    return slice(int(x[0]), int(x[-1]) + 1), slice(int(y[0]), int(y[-1]) + 1), slice(int(z[0]), int(z[-1]) + 1)


def _interpolation(source: tuple[int, ...], size: tuple[int, int], nearest: bool) -> int:
    """Area interpolation when shrinking, linear when enlarging, nearest for labels."""
    if nearest:
        return cv2.INTER_NEAREST
    return cv2.INTER_AREA if size[0] < source[0] else cv2.INTER_LINEAR


def resize_plane(volume: NDArray, size: tuple[int, int], *, nearest: bool = False) -> NDArray:
    """Resize the first two axes of ``(X, Y)`` or ``(X, Y, C)`` with OpenCV.

    OpenCV 5 resizes at most 4 float channels per call, so channels go in groups of 4.
    Both interpolations have non-negative weights that sum to one: a resized value is a
    convex combination of its neighbours (:func:`restore_labels` relies on it).
    """
    if volume.shape[0] == size[0] and volume.shape[1] == size[1]:
        return volume
    interpolation = _interpolation(volume.shape, size, nearest)
    # OpenCV takes (width, height) = (columns, rows); rows are our x axis.
    dsize = (size[1], size[0])
    if volume.ndim == 2:
        return cv2.resize(volume, dsize, interpolation=interpolation)
    flat = volume.reshape(*volume.shape[:2], -1)
    parts = [
        cv2.resize(np.ascontiguousarray(flat[:, :, i : i + 4]), dsize, interpolation=interpolation).reshape(*size, -1)
        for i in range(0, flat.shape[2], 4)
    ]
    return np.concatenate(parts, axis=2).reshape(*size, *volume.shape[2:])


def _mean_std(total: float, squares: float, count: int) -> tuple[float, float]:
    """Mean and standard deviation from the sum and the sum of squares of ``count`` values (std 0 -> 1)."""
    if count == 0:
        return 0.0, 1.0
    mean = total / count
    std = max(squares / count - mean**2, 0.0) ** 0.5
    return mean, (std if std > 0 else 1.0)


def prepare_volume(
    images: Mapping[str, NDArray], config: PreprocessConfig, *, blank_missing: bool = False
) -> PreparedVolume:
    """Normalise, crop and resize a case's modalities into network slices.

    The result equals z-scoring each volume (:func:`zscore`), cropping it and resizing
    every axial plane, but is computed in a cheaper order. Resizing is linear and the
    z-scored volume is ``(x - mean * inside) / std``, with ``inside`` the voxels that keep
    a value (the brain, or the whole volume for the seed's pipeline), so ``x`` and
    ``inside`` are resized plane by plane (each plane stays in cache; the sums for the
    statistics are taken on the way) and combined at the network's resolution.
    The planes are split between two threads (NumPy and OpenCV release the GIL).

    Args:
        images: Canonical ``(X, Y, Z)`` volumes by modality name; must contain
            every modality in ``config.modalities`` unless ``blank_missing``.
        config: The pipeline settings (``config.plane``: the volumes are sliced in that plane).
        blank_missing: Give a modality that ``images`` lacks an all-zero channel (the brain's
            z-scored mean) instead of refusing the case: only for a model trained with modality
            dropout, which saw such channels (:data:`neuroinsight.augmentation.MODDROP`).

    Returns:
        A :class:`PreparedVolume` with ``channels`` of shape ``(C, Z, S, S)``.
    """
    missing = [m for m in config.modalities if m not in images]
    if missing and (not blank_missing or len(missing) == len(config.modalities)):
        names = ", ".join(m.upper() for m in config.modalities)
        raise InputError(f"This model needs {names}; missing {', '.join(m.upper() for m in missing)}.")
    images = {name: to_plane(volume, config.plane) for name, volume in images.items()}
    with ThreadPoolExecutor(max_workers=2) as pool:
        brain = brain_mask(images, pool)
        box = brain_box(brain, config.crop_margin) if config.crop_to_brain else CropBox(0, 0, *brain.shape[:2])
        has_brain = brain.any(axis=(0, 1))
        by_brain = config.normalization == "brain"
        # Brain mode: slices without brain are all 0 after normalisation, so they are skipped.
        todo = np.nonzero(has_brain)[0] if by_brain else np.arange(brain.shape[2])
        dsize = (config.image_size, config.image_size)
        interpolation = _interpolation((box.size_x, box.size_y), dsize, nearest=False)
        channels = np.zeros((len(config.modalities), brain.shape[2], *dsize), dtype=np.float32)
        n_brain = np.count_nonzero(brain)

        # (channel, volume) of the modalities present; a missing one's channel stays 0
        volumes = [(c, images[name]) for c, name in enumerate(config.modalities) if name in images]
        inside_mask = brain if by_brain else np.ones(brain.shape, dtype=bool)
        inside = np.zeros((brain.shape[2], *dsize), dtype=np.float32)

        def resized(plane: NDArray) -> NDArray[np.float32]:
            return cv2.resize(plane, dsize, interpolation=interpolation)

        def fill(planes: NDArray[np.intp]) -> NDArray[np.float64]:
            """Resize planes ``planes`` of ``inside`` and every channel; returns per-channel (sum, sum of squares)."""
            sums = np.zeros((len(config.modalities), 2))
            for z in planes:
                inside[z] = resized(box.crop(inside_mask[:, :, z], np.float32))
                for c, volume in volumes:
                    plane = box.crop(volume[:, :, z], np.float32)
                    if by_brain:
                        # Interpolated scans ring slightly below 0 at the brain edge: clip, but count as brain.
                        np.maximum(plane, 0, out=plane)
                        sums[c] += float(plane.sum()), float(np.vdot(plane, plane))
                    channels[c, z] = resized(plane)
            return sums

        def normalise(c: int, volume: NDArray) -> None:
            if by_brain:
                mean, std = _mean_std(*sums[c], n_brain)
            else:
                squares = float(np.einsum("ijk,ijk->", volume, volume, dtype=np.float64))
                mean, std = _mean_std(float(volume.sum(dtype=np.float64)), squares, volume.size)
            flat = channels[c].reshape(-1, config.image_size)  # 2-D, as OpenCV's arithmetic wants
            cv2.addWeighted(flat, 1 / std, inside.reshape(-1, config.image_size), -mean / std, 0.0, dst=flat)

        # Split by planes, not by modality: two equal halves keep both threads busy to the end.
        sums = sum(pool.map(fill, np.array_split(todo, 2)))
        list(pool.map(lambda item: normalise(*item), volumes))
    return PreparedVolume(
        channels=channels,
        has_brain=has_brain,
        box=box,
        full_shape=tuple(brain.shape),  # type: ignore[arg-type]
        brain=brain,
        context=config.context,
        plane=config.plane,
    )


def prepare_label(label: NDArray, prepared: PreparedVolume, image_size: int) -> NDArray[np.uint8]:
    """Crop and resize a canonical BraTS label map like its images: ``(Z, S, S)`` classes 0..3."""
    classes = labels_to_classes(to_plane(label, prepared.plane))
    resized = resize_plane(prepared.box.crop(classes), (image_size, image_size), nearest=True)
    return np.ascontiguousarray(resized.reshape(image_size, image_size, -1).transpose(2, 0, 1))


def training_slices(prepared: PreparedVolume, config: PreprocessConfig) -> NDArray[np.intp]:
    """Indices of the slices a training run uses: ``slice_range`` or every slice with brain."""
    if config.slice_range is not None:
        start, stop = config.slice_range
        return np.arange(max(start, 0), min(stop, prepared.has_brain.size))
    return np.nonzero(prepared.has_brain)[0]


def restore_window(probs: NDArray[np.float32], prepared: PreparedVolume) -> NDArray[np.float32]:
    """Invert the resize for per-class maps, staying inside the crop window.

    Args:
        probs: ``(Z, S, S, K)`` maps per slice (softmax output, or any per-pixel values).
        prepared: The :class:`PreparedVolume` the input came from.

    Returns:
        float32 ``(box.size_x, box.size_y, Z, K)``: the crop window at the source resolution.
        Working in the window (the brain's bounding square) avoids full-grid arrays.
    """
    n_z, _, _, n_classes = probs.shape
    box = prepared.box
    window = np.ascontiguousarray(probs.transpose(1, 2, 0, 3)).reshape(probs.shape[1], probs.shape[2], n_z * n_classes)
    return resize_plane(window, (box.size_x, box.size_y)).reshape(box.size_x, box.size_y, n_z, n_classes)


def restore_probabilities(probs: NDArray[np.float32], prepared: PreparedVolume) -> NDArray[np.float32]:
    """Invert crop and resize for per-class probabilities onto the full canonical grid.

    Returns:
        float32 ``(X, Y, Z, K)``; outside the crop the background class has probability 1.
        Take the argmax *after* this step (or on :func:`restore_window`'s output).
    """
    window = restore_window(probs, prepared)
    full = prepared.box.uncrop(window, prepared.full_shape[:2], fill=0.0)
    outside = prepared.box.uncrop(np.zeros(window.shape[:3], bool), prepared.full_shape[:2], fill=True)
    full[..., 0][outside] = 1.0
    return from_plane(full, prepared.plane)


#: How class probabilities become labels (:func:`decode_labels`).
DECODINGS = ("argmax", "regions")


#: Region-decoding thresholds (whole tumor, core share of the tumor, enhancing share of the core).
RegionThresholds = tuple[float, float, float]
HALF: RegionThresholds = (0.5, 0.5, 0.5)


def restore_labels(
    probs: NDArray[np.float32],
    prepared: PreparedVolume,
    decoding: str = "argmax",
    thresholds: RegionThresholds = HALF,
) -> NDArray[np.uint8]:
    """BraTS labels on the full canonical grid: :func:`decode_labels` of :func:`restore_probabilities`,
    0 outside the brain.

    Returns:
        uint8 ``(X, Y, Z)`` in Fortran order (axial planes contiguous, as NIfTI stores them).
    """
    labels = np.zeros(prepared.canonical_brain.shape, dtype=np.uint8, order="F")
    restore_label_slices(probs, np.arange(len(probs)), prepared, labels, decoding, thresholds)
    return labels


def decode_labels(
    probs: NDArray[np.float32], decoding: str = "argmax", thresholds: RegionThresholds = HALF
) -> NDArray[np.uint8]:
    """BraTS labels from ``(..., 4)`` class probabilities.

    ``argmax`` takes the most probable class (ties keep the lower class). ``regions`` decides
    the nested BraTS regions in turn from summed probabilities, as region-based models are
    read out (Isensee et al., BraTS 2018): whole tumor where P(NCR)+P(ED)+P(ET) exceeds
    ``thresholds[0]``; within it tumor core where P(NCR)+P(ET) exceeds ``thresholds[1]`` of the
    tumor probability; within that enhancing where P(ET) exceeds ``thresholds[2]`` of the core
    probability. With halves these read P(tumor) > P(background), P(core) > P(ED), P(ET) > P(NCR),
    and a voxel whose tumor probability is split between classes is still tumor.
    """
    if decoding not in DECODINGS:
        raise ValueError(f"Unknown decoding {decoding!r}; choose one of {', '.join(DECODINGS)}.")
    # Elementwise maxima and sums: NumPy reduces a 4-wide last axis an order of magnitude slower.
    background, ncr, edema, enhancing = (probs[..., c] for c in range(N_CLASSES))
    if decoding == "regions":
        whole, core, enhancing_share = thresholds
        core_p = ncr + enhancing
        tumor_p = core_p + edema
        # Products, not ratios: no division by a zero core or tumor probability.
        core_labels = np.where(enhancing > enhancing_share * core_p, CLASS_TO_LABEL[3], CLASS_TO_LABEL[1])
        tumor = np.where(core_p > core * tumor_p, core_labels.astype(np.uint8), np.uint8(CLASS_TO_LABEL[2]))
        return np.where(tumor_p > whole * (tumor_p + background), tumor, np.uint8(0)).astype(np.uint8)
    best, labels = background, np.zeros(probs.shape[:-1], dtype=np.uint8)
    for c in range(1, N_CLASSES):  # strictly greater: ties keep the lower class, as argmax does
        wins = probs[..., c] > best
        labels[wins] = CLASS_TO_LABEL[c]
        best = np.where(wins, probs[..., c], best)
    return labels


def restore_label_slices(
    probs: NDArray[np.float32],
    index: NDArray[np.intp],
    prepared: PreparedVolume,
    labels: NDArray[np.uint8],
    decoding: str = "argmax",
    thresholds: RegionThresholds = HALF,
) -> None:
    """Write the labels of slices ``index`` (network probabilities ``probs``, one per index) into
    the canonical label map ``labels`` (slices of ``prepared.plane``).

    Only slices where some network pixel could be tumor are resized: P(tumor) above the
    whole-tumor threshold (regions) or above P(background) (argmax needs P(background) < 1/2).
    Both tests are linear in the probabilities and resizing takes convex combinations
    (:func:`resize_plane`), so a slice that fails them at every network pixel fails them at
    every resized voxel too and decodes to background. Skipping it changes nothing and saves
    most of the work.
    """
    box = prepared.box
    labels = to_plane(labels, prepared.plane)  # a view: writes land in the canonical map
    volume_part, window_part = box._overlap(prepared.full_shape[:2])
    tumor_p = probs[..., 1] + probs[..., 2] + probs[..., 3]
    whole = thresholds[0] if decoding == "regions" else 0.5
    tumor = tumor_p > whole * (tumor_p + probs[..., 0])
    for i in np.nonzero(tumor.any(axis=(1, 2)))[0]:
        window = resize_plane(probs[i], (box.size_x, box.size_y))[window_part]
        z = index[i]
        labels[(*volume_part, z)] = decode_labels(window, decoding, thresholds) * prepared.brain[(*volume_part, z)]
