"""The training data generator and the patient-level splits.

:class:`SliceDataset` is the seed's generator as a ``keras.utils.PyDataset``:
built over case ids, it loads the modalities with nibabel, z-scores them,
maps label 4 -> 3, keeps the training slices (50..130 in the seed's settings),
resizes to 128x128 (images area/linear, labels nearest), stacks the channels
and one-hot encodes 4 classes; ``on_epoch_end`` reshuffles with its own seeded
generator. Images and labels are indexed together as ``(case, slice)`` records,
so a shuffle can never separate a slice from its mask.

Reading ``.nii.gz`` costs about a second per case, far slower than a training
step, so by default each case is preprocessed once into a memory-mapped
``.npy`` cache (``cache_dir``) holding exactly what the generator would compute;
without a cache every batch re-reads the cases it touches (the seed's way).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neuroinsight import io
from neuroinsight.augmentation import NO_AUGMENT, AugmentConfig, augment_slice, carve_mix
from neuroinsight.errors import InputError
from neuroinsight.preprocessing import (
    N_CLASSES,
    PreprocessConfig,
    one_hot,
    prepare_label,
    prepare_volume,
    slices_per_modality,
    training_slices,
)

logger = logging.getLogger(__name__)

try:  # keras is optional for the parts of this module that do not train
    import keras

    _PyDataset = keras.utils.PyDataset
except ImportError:  # pragma: no cover - keras is a requirement
    _PyDataset = object  # type: ignore[assignment,misc]


@dataclass(frozen=True)
class CaseSlices:
    """Training arrays of one case: images ``(n, S, S, C)`` float and classes ``(n, S, S)`` uint8."""

    case_id: str
    images: NDArray
    classes: NDArray


def load_training_slices(case_dir: Path, config: PreprocessConfig) -> CaseSlices:
    """Read a case folder and return its preprocessed training slices (no cache)."""
    case = io.load_case(case_dir)
    if case.label is None:
        raise InputError(f"{case_dir.name}: no ground truth (_seg) file; training needs one per case.")
    prepared = prepare_volume(case.images, config)
    keep = training_slices(prepared, config)
    classes = prepare_label(case.label, prepared, config.image_size)
    return CaseSlices(case.case_id, prepared.batch(keep), classes[keep])


def _cache_key(case_dir: Path, config: PreprocessConfig) -> str:
    stamp = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in sorted(case_dir.glob("*.nii*"))]
    blob = json.dumps({"config": config.to_dict(), "files": stamp}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def cached_training_slices(case_dir: Path, config: PreprocessConfig, cache_dir: Path) -> CaseSlices:
    """Like :func:`load_training_slices`, memory-mapped from ``cache_dir`` after the first call.

    The cache key covers the preprocessing settings and the files' sizes and times,
    so a changed setting or file is recomputed, never silently reused.
    """
    key = _cache_key(case_dir, config)
    image_path = cache_dir / f"{case_dir.name}-{key}-x.npy"
    class_path = cache_dir / f"{case_dir.name}-{key}-y.npy"
    if not (image_path.exists() and class_path.exists()):
        cache_dir.mkdir(parents=True, exist_ok=True)
        fresh = load_training_slices(case_dir, config)
        # Write to a temporary name first so a killed run never leaves half a cache file, and
        # make it unique so parallel runs filling the same cache never write into one file.
        for path, array in ((image_path, fresh.images.astype(np.float16)), (class_path, fresh.classes)):
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, array)
            tmp.replace(path)
    return CaseSlices(case_dir.name, np.load(image_path, mmap_mode="r"), np.load(class_path, mmap_mode="r"))


class SliceDataset(_PyDataset):
    """Batches of ``(images (B, S, S, C) float32, one-hot (B, S, S, 4) float32)`` over case slices.

    Args:
        case_dirs: BraTS case folders (one per case id).
        config: Preprocessing settings (the seed's: ``SEED_PREPROCESS``).
        batch_size: Slices per batch (seed: 2).
        shuffle: Reshuffle the slice order at the end of every epoch (seed: yes).
        augment: Random transforms for training; ``NO_AUGMENT`` for validation.
        seed: Seed of the dataset's own random generator (order and augmentation).
        cache_dir: Memory-mapped cache folder; None re-reads each case's NIfTI files once per epoch.
        extra_planes: Other slicing planes whose slices of the same cases join the pool
            (multi-plane training: more distinct samples for a network that still predicts in
            ``config.plane``). An epoch keeps ``config.plane``'s length and draws that many
            records from the pool, so extra planes add variety at the same training cost.
        **kwargs: Passed to ``keras.utils.PyDataset`` (``workers``, ``use_multiprocessing``).
    """

    def __init__(
        self,
        case_dirs: Sequence[Path],
        config: PreprocessConfig,
        *,
        batch_size: int = 2,
        shuffle: bool = True,
        augment: AugmentConfig = NO_AUGMENT,
        seed: int = 0,
        cache_dir: Path | None = None,
        extra_planes: Sequence[str] = (),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not case_dirs:
            raise InputError("No cases given to the data generator.")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}.")
        if config.plane in extra_planes:
            raise InputError(f"extra_planes repeats the main plane {config.plane!r}.")
        self.config = config
        # One source per (plane, case): the main plane's cases first, then each extra plane's.
        configs = [config, *(replace(config, plane=plane) for plane in extra_planes)]
        self._sources = [(Path(p), c) for c in configs for p in case_dirs]
        self.case_dirs = [Path(p) for p in case_dirs]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.cache_dir = cache_dir
        self._rng = np.random.default_rng(seed)
        self._cases: dict[int, CaseSlices] = {}
        counts = [self._case(i).classes.shape[0] for i in range(len(self._sources))]
        if cache_dir is None:
            self._cases.clear()  # keep nothing in memory: the seed's re-reading behaviour
        self.epoch_size = sum(counts[: len(self.case_dirs)])
        if self.epoch_size == 0:
            where = f"slices {config.slice_range[0]}..{config.slice_range[1]}" if config.slice_range else "brain slices"
            raise InputError(
                f"No training slices: none of the {len(self.case_dirs)} cases has {where} "
                "(are the volumes shorter than the slice range?). Use another preset or slice range."
            )
        self.records = np.array([(c, s) for c, n in enumerate(counts) for s in range(n)], dtype=np.int64)
        self.order = self._shuffled() if shuffle else np.arange(len(self.records))
        # CarveMix donors: the records of every slice with tumor, and each record's relative height.
        self._heights = np.concatenate([np.arange(n) / max(n - 1, 1) for n in counts])
        self._donors = self._tumor_records() if augment.carvemix else np.zeros(0, dtype=np.int64)

    def _tumor_records(self) -> NDArray[np.int64]:
        """Indices into ``records`` of the slices that show tumor (read once, at start)."""
        has_tumor = [
            np.any(np.asarray(self._case(source).classes) > 0, axis=(1, 2)) for source in range(len(self._sources))
        ]
        if self.cache_dir is None:
            self._cases.clear()
        return np.nonzero(np.concatenate(has_tumor))[0]

    def _carve_mix(self, record: int, image: NDArray, label: NDArray) -> tuple[NDArray, NDArray]:
        """Paste a tumor from another patient's slice in the same plane at a similar height.

        Brains are cropped to their bounding square before resizing, so slices at the same
        relative height of two patients show similar anatomy where the tumor lands.
        """
        n_cases = len(self.case_dirs)
        source = self.records[record, 0]
        donor_sources = self.records[self._donors, 0]
        plane, patient = divmod(source, n_cases)  # sources are ordered plane by plane
        candidates = self._donors[
            (donor_sources // n_cases == plane)
            & (donor_sources % n_cases != patient)
            & (np.abs(self._heights[self._donors] - self._heights[record]) <= 0.1)
        ]
        if candidates.size == 0:
            return image, label
        donor_source, donor_index = self.records[self._rng.choice(candidates)]
        donor = self._case(int(donor_source))
        mixed = carve_mix(
            image,
            label,
            np.asarray(donor.images[donor_index], dtype=np.float32),
            np.asarray(donor.classes[donor_index], dtype=np.uint8),
            self._rng.uniform(0, self.augment.carvemix_margin_px),
        )
        return mixed if mixed is not None else (image, label)

    def _case(self, index: int) -> CaseSlices:
        if index not in self._cases:
            case_dir, config = self._sources[index]
            if self.cache_dir is not None:
                self._cases[index] = cached_training_slices(case_dir, config, self.cache_dir)
            else:
                self._cases = {index: load_training_slices(case_dir, config)}
        return self._cases[index]

    def __len__(self) -> int:
        return math.ceil(self.epoch_size / self.batch_size)

    def __getitem__(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        images, classes = [], []
        group = slices_per_modality(self.config.context)  # one intensity draw per modality
        for record in self.order[index * self.batch_size : (index + 1) * self.batch_size]:
            case_index, slice_index = self.records[record]
            case = self._case(int(case_index))
            image = np.asarray(case.images[slice_index], dtype=np.float32)
            label = np.asarray(case.classes[slice_index], dtype=np.uint8)
            if self.augment.carvemix and self._rng.random() < self.augment.carvemix:
                image, label = self._carve_mix(int(record), image, label)
            if self.augment != NO_AUGMENT:
                image, label = augment_slice(image, label, self.augment, self._rng, group=group)
            images.append(image)
            classes.append(label)
        return np.stack(images), one_hot(np.stack(classes), N_CLASSES)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self._shuffled()

    def _shuffled(self) -> NDArray[np.int64]:
        """A fresh random order of the records for an epoch.

        With a cache every slice is equally cheap, so the order is a plain permutation.
        Without one a case is read from disk whenever a batch needs a case not in memory,
        so cases come in random order, each with its slices shuffled and kept together:
        every case is read once per epoch (as the seed's generator reads whole patients)
        instead of once per slice. With extra planes the epoch takes (case, plane) sources in
        that order until it holds as many slices as the main plane; the last one may be cut short.
        """
        if self.cache_dir is not None:
            return self._rng.permutation(len(self.records))
        cases = self._rng.permutation(len(self._sources))
        return np.concatenate([self._rng.permutation(np.nonzero(self.records[:, 0] == c)[0]) for c in cases])


# --------------------------------------------------------------------------- splits


def _allocate(total: int, sizes: Mapping[str, int], minimum: Mapping[str, int]) -> dict[str, int]:
    """Share ``total`` patients over groups in proportion to their sizes, with per-group minimums."""
    alloc = dict.fromkeys(sizes, 0)
    for g in sorted(minimum, key=lambda g: -sizes.get(g, 0)):  # minimums never exceed the total
        if sum(alloc.values()) < total:
            alloc[g] = min(minimum[g], sizes[g])
    n_all = sum(sizes.values())
    while sum(alloc.values()) < total:
        open_groups = [g for g in sizes if alloc[g] < sizes[g]]
        if not open_groups:
            break
        # Give the next patient to the group furthest below its proportional share.
        neediest = max(open_groups, key=lambda g: (total * sizes[g] / n_all - alloc[g], g))
        alloc[neediest] += 1
    return alloc


def stratified_split(
    grades: Mapping[str, str], *, n_val: int = 1, n_test: int = 2, seed: int = 0
) -> dict[str, list[str]]:
    """Split whole patients into train/val/test, preserving the HGG/LGG mix.

    Every grade with at least two patients gets a test patient; validation takes the
    next share. With the 12 shared cases (10 HGG, 2 LGG) this gives 9/1/2 with one
    LGG patient in test and one in train.

    Args:
        grades: ``{case_id: grade}``.
        n_val: Validation patients in total.
        n_test: Test patients in total.
        seed: Shuffling seed.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.
    """
    if n_val + n_test >= len(grades):
        raise InputError(f"Cannot hold out {n_val} + {n_test} of {len(grades)} patients; keep some for training.")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for case in sorted(grades):
        groups.setdefault(grades[case], []).append(case)
    for members in groups.values():
        rng.shuffle(members)
    sizes = {g: len(m) for g, m in groups.items()}
    test = _allocate(n_test, sizes, {g: 1 for g, n in sizes.items() if n >= 2})
    remaining = {g: sizes[g] - test[g] for g in sizes}
    val = _allocate(n_val, remaining, {})
    split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for g, members in groups.items():
        split["test"] += members[: test[g]]
        split["val"] += members[test[g] : test[g] + val[g]]
        split["train"] += members[test[g] + val[g] :]
    return {k: sorted(v) for k, v in split.items()}


def stratified_folds(grades: Mapping[str, str], n_folds: int, *, seed: int = 0) -> list[list[str]]:
    """Patient-level folds for cross-validation; each grade is dealt round-robin over the folds."""
    if not 2 <= n_folds <= len(grades):
        raise InputError(f"n_folds must be between 2 and {len(grades)}, got {n_folds}.")
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    position = 0
    for grade in sorted(set(grades.values())):
        members = sorted(c for c in grades if grades[c] == grade)
        rng.shuffle(members)
        for case in members:
            folds[position % n_folds].append(case)
            position += 1
    return [sorted(f) for f in folds]


def split_cases(
    grades: Mapping[str, str],
    *,
    n_val: int = 1,
    n_test: int = 2,
    seed: int = 0,
    n_folds: int | None = None,
    fold: int | None = None,
) -> dict[str, list[str]]:
    """Train/val/test split: a fixed stratified split, or fold ``fold`` of ``n_folds`` as test.

    In cross-validation mode the validation patients are drawn, stratified, from the
    non-test patients, so the test fold is never used for training or model selection.
    """
    if (n_folds is None) != (fold is None):
        raise InputError("Give --folds and --fold together.")
    if n_folds is None:
        return stratified_split(grades, n_val=n_val, n_test=n_test, seed=seed)
    assert fold is not None  # narrowed for type checkers; checked above
    if not 0 <= fold < n_folds:
        raise InputError(f"fold must be between 0 and {n_folds - 1}, got {fold}.")
    test = stratified_folds(grades, n_folds, seed=seed)[fold]
    rest = {c: g for c, g in grades.items() if c not in test}
    inner = stratified_split(rest, n_val=n_val, n_test=0, seed=seed + fold + 1)
    return {"train": inner["train"], "val": inner["val"], "test": sorted(test)}
