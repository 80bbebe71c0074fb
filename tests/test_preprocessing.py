"""Preprocessing: known inputs give known outputs, inputs are not mutated, inversion is exact."""

from __future__ import annotations

import numpy as np
import pytest

from neuroinsight import preprocessing as pp
from tests.conftest import small_case


def test_zscore_over_brain_keeps_background_zero():
    volume = np.zeros((4, 4, 4), np.float32)
    volume[1:3, 1:3, 1:3] = np.arange(8).reshape(2, 2, 2)
    original = volume.copy()
    out = pp.zscore(volume, np.pad(np.ones((2, 2, 2), bool), 1))
    inside = out[1:3, 1:3, 1:3]
    assert inside.mean() == pytest.approx(0, abs=1e-6)
    assert inside.std() == pytest.approx(1, abs=1e-5)
    assert (out[0] == 0).all()
    np.testing.assert_array_equal(volume, original)


def test_zscore_whole_volume_is_the_seeds():
    volume = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    out = pp.zscore(volume)
    np.testing.assert_allclose(out, (volume - volume.mean()) / volume.std(), rtol=1e-6)


def test_label_mapping_and_inverse():
    labels = np.array([0, 1, 2, 4, 4, 0], np.uint8)
    classes = pp.labels_to_classes(labels)
    np.testing.assert_array_equal(classes, [0, 1, 2, 3, 3, 0])
    np.testing.assert_array_equal(pp.classes_to_labels(classes), labels)
    hot = pp.one_hot(classes)
    assert hot.shape == (6, 4) and hot.dtype == np.float32
    np.testing.assert_array_equal(hot.argmax(-1), classes)


@pytest.mark.parametrize("config", [pp.DEFAULT_PREPROCESS, pp.SEED_PREPROCESS], ids=["default", "seed"])
def test_prepare_then_restore_recovers_labels(config):
    case = small_case()
    prepared = pp.prepare_volume(case.images, config)
    assert prepared.slices.shape == (case.shape[2], 128, 128, 2)
    assert prepared.slices.dtype == np.float32
    classes = pp.prepare_label(case.label, prepared, config.image_size)
    restored = pp.restore_probabilities(pp.one_hot(classes), prepared)
    assert restored.shape == (*case.shape, 4)
    labels = pp.classes_to_labels(restored.argmax(-1))
    # Nearest-neighbour down and linear up loses only boundary voxels.
    agreement = (labels == case.label)[case.label > 0].mean()
    assert agreement > 0.85


def test_crop_box_pads_outside_the_volume():
    box = pp.CropBox(-2, 1, 6, 4)
    volume = np.arange(16).reshape(4, 4)
    window = box.crop(volume)
    assert window.shape == (6, 4)
    assert (window[:2] == 0).all()
    back = box.uncrop(window, (4, 4), fill=-1)
    np.testing.assert_array_equal(back[:, 1:], volume[:, 1:])
    assert (back[:, 0] == -1).all()


def test_training_slices_respect_the_seed_range():
    case = small_case()
    prepared = pp.prepare_volume(case.images, pp.SEED_PREPROCESS)
    kept = pp.training_slices(prepared, pp.PreprocessConfig(slice_range=(10, 30)))
    np.testing.assert_array_equal(kept, np.arange(10, 30))
    every_brain_slice = pp.training_slices(prepared, pp.DEFAULT_PREPROCESS)
    assert set(every_brain_slice) == set(np.nonzero(prepared.has_brain)[0])
