"""The generator (shapes, dtypes, labels, shuffling, cache) and the patient splits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroinsight import io
from neuroinsight.augmentation import AugmentConfig
from neuroinsight.data import SliceDataset, split_cases, stratified_folds, stratified_split
from neuroinsight.errors import InputError
from neuroinsight.preprocessing import PreprocessConfig

CONFIG = PreprocessConfig(image_size=32, slice_range=(8, 32))


def test_batches_have_the_seed_layout(phantom_data_dir, tmp_path):
    dirs = io.list_cases(phantom_data_dir)[:2]
    data = SliceDataset(dirs, CONFIG, batch_size=5, cache_dir=tmp_path)
    assert len(data.records) == 2 * 24
    assert len(data) == math.ceil(48 / 5)
    x, y = data[0]
    assert x.shape == (5, 32, 32, 2) and x.dtype == np.float32
    assert y.shape == (5, 32, 32, 4) and y.dtype == np.float32
    np.testing.assert_array_equal(y.sum(-1), 1.0)  # one-hot
    last_x, _ = data[len(data) - 1]
    assert last_x.shape[0] == 48 - 5 * (len(data) - 1)  # the last partial batch is kept


def test_labels_four_become_class_three(phantom_data_dir, tmp_path):
    dirs = io.list_cases(phantom_data_dir)[:1]
    data = SliceDataset(dirs, CONFIG, batch_size=24, shuffle=False, cache_dir=tmp_path)
    _, y = data[0]
    present = set(np.unique(y.argmax(-1)))
    assert present <= {0, 1, 2, 3} and 3 in present


def test_epoch_end_reshuffles_image_label_pairs_together(phantom_data_dir, tmp_path):
    dirs = io.list_cases(phantom_data_dir)[:2]
    data = SliceDataset(dirs, CONFIG, batch_size=48, seed=3, cache_dir=tmp_path)
    before_x, before_y = data[0]
    order_before = data.order.copy()
    data.on_epoch_end()
    assert not np.array_equal(order_before, data.order)
    after_x, after_y = data[0]
    # Same set of (image, label) pairs, different order: match every pair by image content.
    key_before = {before_x[i].tobytes(): before_y[i].tobytes() for i in range(len(before_x))}
    for i in range(len(after_x)):
        assert key_before[after_x[i].tobytes()] == after_y[i].tobytes()


def test_extra_planes_join_the_pool_at_the_same_epoch_length(phantom_data_dir, tmp_path):
    dirs = io.list_cases(phantom_data_dir)[:2]
    config = PreprocessConfig(image_size=32)
    axial = SliceDataset(dirs, config, batch_size=8, shuffle=False, cache_dir=tmp_path)
    both = SliceDataset(dirs, config, batch_size=8, seed=1, cache_dir=tmp_path, extra_planes=("coronal",))
    assert len(both) == len(axial) and both.epoch_size == len(axial.records)
    assert len(both.records) > len(axial.records)  # the coronal slices are there too
    # An epoch draws from both planes: records past the axial ones are coronal slices.
    drawn = both.order[: both.epoch_size]
    assert (drawn >= len(axial.records)).any() and (drawn < len(axial.records)).any()
    x, y = both[0]
    assert x.shape == (8, 32, 32, 2) and y.shape == (8, 32, 32, 4)
    with pytest.raises(InputError, match="main plane"):
        SliceDataset(dirs, config, cache_dir=tmp_path, extra_planes=("axial",))


def test_cache_gives_what_the_uncached_generator_gives(phantom_data_dir, tmp_path):
    dirs = io.list_cases(phantom_data_dir)[:1]
    cached = SliceDataset(dirs, CONFIG, batch_size=24, shuffle=False, cache_dir=tmp_path)
    direct = SliceDataset(dirs, CONFIG, batch_size=24, shuffle=False, cache_dir=None)
    np.testing.assert_allclose(cached[0][0], direct[0][0], atol=2e-2)  # cache holds float16
    np.testing.assert_array_equal(cached[0][1], direct[0][1])


def test_split_is_stratified_by_whole_patients():
    grades = {f"h{i}": "HGG" for i in range(10)} | {"l0": "LGG", "l1": "LGG"}
    split = stratified_split(grades, n_val=1, n_test=2, seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [9, 1, 2]
    assert {grades[c] for c in split["test"]} == {"HGG", "LGG"}
    assert {grades[c] for c in split["train"]} == {"HGG", "LGG"}
    everyone = split["train"] + split["val"] + split["test"]
    assert sorted(everyone) == sorted(grades)  # no patient twice, none lost
    assert split == stratified_split(grades, n_val=1, n_test=2, seed=0)


def test_folds_never_share_a_patient():
    grades = {f"h{i}": "HGG" for i in range(10)} | {"l0": "LGG", "l1": "LGG"}
    folds = stratified_folds(grades, 4, seed=1)
    flat = [c for f in folds for c in f]
    assert sorted(flat) == sorted(grades) and len(flat) == len(set(flat))
    for k in range(4):
        split = split_cases(grades, n_folds=4, fold=k, seed=1)
        assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))
        assert split["test"] == folds[k]


def test_bad_split_requests_raise():
    with pytest.raises(InputError):
        stratified_split({"a": "HGG", "b": "HGG"}, n_val=1, n_test=1)
    with pytest.raises(InputError):
        split_cases({"a": "HGG"}, n_folds=4)


def test_inner_split_of_a_fold_keeps_every_non_test_patient():
    grades = {f"h{i}": "HGG" for i in range(10)} | {"l0": "LGG", "l1": "LGG"}
    for k in range(4):
        split = split_cases(grades, n_folds=4, fold=k)
        assert len(split["val"]) == 1
        assert len(split["train"]) + len(split["val"]) + len(split["test"]) == len(grades)


def test_uncached_epochs_read_each_case_once(phantom_data_dir):
    dirs = io.list_cases(phantom_data_dir)[:3]
    data = SliceDataset(dirs, CONFIG, batch_size=4, seed=1, cache_dir=None)
    for _ in range(2):
        order = data.order.copy()
        assert sorted(order) == list(range(len(data.records)))  # every slice once per epoch
        cases = data.records[order, 0]
        assert np.count_nonzero(np.diff(cases)) == len(dirs) - 1  # each case's slices come together
        data.on_epoch_end()
    assert not np.array_equal(order, data.order)


def test_carvemix_brings_other_patients_tumors_into_tumor_free_slices(phantom_data_dir, tmp_path):
    dirs = io.list_cases(phantom_data_dir)[:3]
    config = PreprocessConfig(image_size=32)
    plain = SliceDataset(dirs, config, batch_size=1000, shuffle=False, cache_dir=tmp_path)
    mixing = SliceDataset(
        dirs, config, batch_size=1000, shuffle=False, cache_dir=tmp_path, augment=AugmentConfig(carvemix=1.0)
    )
    (x0, y0), (x1, y1) = plain[0], mixing[0]
    tumor0, tumor1 = y0[..., 1:].sum(axis=(1, 2, 3)) > 0, y1[..., 1:].sum(axis=(1, 2, 3)) > 0
    changed = (x0 != x1).any(axis=(1, 2, 3))
    assert (changed & ~tumor0 & tumor1).sum() >= 3  # tumor-free slices received a tumor
    assert not (changed & ~tumor1).any()  # every changed slice carries the tumor it was given
    for i in np.nonzero(changed)[0]:  # pasted voxels are another slice's, the rest untouched
        moved = (x0[i] != x1[i]).any(axis=-1)
        np.testing.assert_array_equal(y1[i][~moved], y0[i][~moved])
