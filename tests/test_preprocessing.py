"""Preprocessing: known inputs give known outputs, inputs are not mutated, inversion is exact."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from neuroinsight import preprocessing as pp
from neuroinsight.errors import InputError
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


CORONAL = replace(pp.DEFAULT_PREPROCESS, plane="coronal")


@pytest.mark.parametrize(
    "config", [pp.DEFAULT_PREPROCESS, pp.SEED_PREPROCESS, CORONAL], ids=["default", "seed", "coronal"]
)
def test_prepare_then_restore_recovers_labels(config):
    case = small_case()
    prepared = pp.prepare_volume(case.images, config)
    slice_axis = pp.PLANE_AXES[config.plane][2]
    assert prepared.slices.shape == (case.shape[slice_axis], 128, 128, 2)
    assert prepared.canonical_brain.shape == case.shape
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


def _flipped_view(volume: np.ndarray) -> np.ndarray:
    """The same values as a view with negative x/y strides over a Fortran-ordered array."""
    return np.asfortranarray(volume[::-1, ::-1])[::-1, ::-1]


@pytest.mark.parametrize("layout", ["C", "F", "flipped view"])
def test_brain_mask_is_the_union_of_non_zero_voxels(layout):
    rng = np.random.default_rng(5)
    images = {
        m: rng.integers(-1, 2, size=(20, 18, 40)).astype(np.int16) * (rng.random((20, 18, 40)) < 0.2) for m in "abc"
    }
    arrange = {"C": np.ascontiguousarray, "F": np.asfortranarray, "flipped view": _flipped_view}[layout]
    images = {m: arrange(v) for m, v in images.items()}
    expected = (images["a"] != 0) | (images["b"] != 0) | (images["c"] != 0)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        for parallel in (None, pool):
            np.testing.assert_array_equal(pp.brain_mask(images, parallel), expected)


def test_batch_is_the_channels_stacked_last():
    prepared = pp.prepare_volume(small_case(seed=3).images, pp.DEFAULT_PREPROCESS)
    buffer = np.full((16, *prepared.channels.shape[2:], prepared.channels.shape[0]), np.nan, np.float32)
    for index in (np.arange(3, 9), np.array([1, 5, 7]), np.array([], dtype=int)):
        expected = np.stack([channel[index] for channel in prepared.channels], axis=-1)
        np.testing.assert_array_equal(prepared.batch(index), expected)
        into = prepared.batch(index, out=buffer[: len(index)])
        assert np.shares_memory(into, buffer) or len(index) == 0
        np.testing.assert_array_equal(into, expected)
    strided = np.zeros((6, buffer.shape[1], 2 * buffer.shape[2], buffer.shape[3]), np.float32)[:, :, ::2]
    np.testing.assert_array_equal(prepared.batch(np.arange(6), out=strided), prepared.slices[:6])


@pytest.mark.parametrize("missing", ["t1", "flair"])
def test_blank_missing_gives_a_missing_modality_a_zero_channel(missing):
    config = pp.PreprocessConfig(modalities=("t1", "t1ce", "t2", "flair"))
    images = small_case(seed=3).images
    full = pp.prepare_volume(images, config)
    partial = {m: v for m, v in images.items() if m != missing}
    with pytest.raises(InputError, match=f"missing {missing.upper()}"):
        pp.prepare_volume(partial, config)
    blanked = pp.prepare_volume(partial, config, blank_missing=True)
    gone = config.modalities.index(missing)
    assert not blanked.channels[gone].any()
    # The phantom's modalities share one brain mask, so the rest is prepared exactly as before.
    kept = [c for c in range(4) if c != gone]
    np.testing.assert_array_equal(blanked.channels[kept], full.channels[kept])
    with pytest.raises(InputError):
        pp.prepare_volume({"t2": images["t2"]}, pp.PreprocessConfig(modalities=("t1",)), blank_missing=True)


def test_context_stacks_each_modalitys_neighbouring_slices():
    config = pp.PreprocessConfig(context=1)
    prepared = pp.prepare_volume(small_case(seed=3).images, config)
    depth = prepared.channels.shape[1]
    assert prepared.n_channels == config.n_channels == 6
    index = np.array([0, 4, depth - 1])
    batch = prepared.batch(index)
    assert batch.shape == (3, *prepared.channels.shape[2:], 6)
    for row, z in enumerate(index):
        for m, channel in enumerate(prepared.channels):
            for d in (-1, 0, 1):
                # Past either end of the volume the end slice stands in for the missing neighbour.
                expected = channel[min(max(z + d, 0), depth - 1)]
                np.testing.assert_array_equal(batch[row, ..., 3 * m + d + 1], expected)
    # The centre channels are the plain 2-D input.
    plain = pp.prepare_volume(small_case(seed=3).images, pp.DEFAULT_PREPROCESS).batch(index)
    np.testing.assert_array_equal(batch[..., [1, 4]], plain)
    assert config.channel_indices(("flair",)) == [3, 4, 5]
    assert pp.DEFAULT_PREPROCESS.channel_indices(("flair", "t1ce")) == [1, 0]
    assert pp.PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="context"):
        pp.PreprocessConfig(context=-1)


def _prepare_by_definition(images, config):
    """The pipeline as its docstring defines it, step by step at full resolution (slow, obvious)."""
    brain = pp.brain_mask(images)
    box = pp.brain_box(brain, config.crop_margin) if config.crop_to_brain else pp.CropBox(0, 0, *brain.shape[:2])
    size = (config.image_size, config.image_size)
    channels = []
    for name in config.modalities:
        if config.normalization == "brain":
            normalised = pp.zscore(np.clip(box.crop(images[name]), 0, None), box.crop(brain))
        else:
            normalised = box.crop(pp.zscore(images[name]))
        channels.append(pp.resize_plane(normalised, size))
    return np.stack(channels, axis=-1).transpose(2, 0, 1, 3)


@pytest.mark.parametrize(
    "config",
    [pp.DEFAULT_PREPROCESS, pp.SEED_PREPROCESS, pp.PreprocessConfig(image_size=24, crop_margin=0)],
    ids=["default", "seed", "enlarging"],
)
@pytest.mark.parametrize("stored", ["float32", "int16 flipped view"])
def test_prepare_volume_equals_its_definition(config, stored):
    case = small_case(seed=3)
    images = {name: volume.copy() for name, volume in case.images.items()}
    brain = pp.brain_mask(images)
    # Negative ringing at the brain edge, and brain touching the border so the crop pads.
    images["flair"][brain & (np.random.default_rng(0).random(brain.shape) < 0.05)] = -3.0
    images["t1ce"][:2] = images["t1ce"][2:4] + 1.0
    if stored != "float32":  # as io.load_case gives a BraTS file: int16, canonical view of an LPS array
        images = {name: _flipped_view(np.round(volume * 100).astype(np.int16)) for name, volume in images.items()}
    prepared = pp.prepare_volume(images, config)
    expected = _prepare_by_definition(images, config)
    assert prepared.slices.shape == expected.shape
    np.testing.assert_allclose(prepared.slices, expected, atol=2e-4)
    np.testing.assert_array_equal(prepared.batch(np.array([5, 7])), prepared.slices[[5, 7]])


@pytest.mark.parametrize(
    ("decoding", "thresholds"), [("argmax", pp.HALF), ("regions", pp.HALF), ("regions", (0.2, 0.15, 0.4))]
)
def test_restore_labels_decodes_the_restored_probabilities(decoding, thresholds):
    case = small_case(seed=4)
    prepared = pp.prepare_volume(case.images, pp.DEFAULT_PREPROCESS)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(*prepared.channels.shape[1:], 4)).astype(np.float32)
    logits[..., 0] += 2.5  # mostly background, as a real prediction, so that slices get skipped
    logits[:10, ..., 0] += 10  # some slices entirely background
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    restored = pp.restore_probabilities(probs, prepared)
    expected = pp.decode_labels(restored, decoding, thresholds) * prepared.brain
    labels = pp.restore_labels(probs, prepared, decoding, thresholds)
    np.testing.assert_array_equal(labels, expected)
    assert labels[..., :10].max() == 0 and len(np.unique(labels)) >= 3  # not vacuous
    if decoding == "argmax":
        np.testing.assert_array_equal(labels, pp.classes_to_labels(restored.argmax(-1)) * prepared.brain)


def test_region_decoding_keeps_tumor_whose_probability_is_split():
    probs = np.array(
        [
            [0.40, 0.20, 0.15, 0.25],  # argmax: background; tumor 0.60, core 0.45 > edema, ET > NCR
            [0.40, 0.25, 0.20, 0.15],  # argmax: background; core, NCR > ET
            [0.40, 0.10, 0.31, 0.19],  # argmax: background; core 0.29 < edema 0.31: edema
            [0.55, 0.15, 0.15, 0.15],  # background in both
            [0.10, 0.30, 0.35, 0.25],  # argmax: edema; regions: core 0.55 > 0.35, NCR > ET
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(pp.decode_labels(probs, "argmax"), [0, 0, 0, 0, 2])
    np.testing.assert_array_equal(pp.decode_labels(probs, "regions"), [4, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="decoding"):
        pp.decode_labels(probs, "softmax")


def test_region_thresholds_move_each_nested_boundary():
    voxel = np.array([[0.6, 0.1, 0.2, 0.1]], dtype=np.float32)  # tumor 0.4, core 0.2 of it, ET 0.1 of that
    assert pp.decode_labels(voxel, "regions", (0.5, 0.5, 0.5))[0] == 0  # 0.4 is not above half
    assert pp.decode_labels(voxel, "regions", (0.3, 0.6, 0.5))[0] == 2  # tumor; core share 0.5 < 0.6: edema
    assert pp.decode_labels(voxel, "regions", (0.3, 0.4, 0.6))[0] == 1  # core; ET share 0.5 < 0.6: NCR
    assert pp.decode_labels(voxel, "regions", (0.3, 0.4, 0.4))[0] == 4  # ET share 0.5 > 0.4


@pytest.mark.parametrize("order", ["C", "F"])
def test_bounding_box_matches_find_objects(order):
    from scipy import ndimage

    rng = np.random.default_rng(2)
    for _ in range(10):
        mask = np.zeros((30, 25, 20), bool, order=order)
        mask[tuple(rng.integers(0, s, 4) for s in mask.shape)] = True
        assert pp.bounding_box(mask) == ndimage.find_objects(mask.astype(np.uint8))[0]


def test_brain_box_is_the_centred_square_around_the_brain():
    mask = np.zeros((40, 30, 10), bool)
    mask[10:20, 5:11, 3:6] = True  # x 10..19 (10 wide), y 5..10 (6 wide)
    assert pp.brain_box(mask, margin=2) == pp.CropBox(
        x0=8, y0=1, size_x=14, size_y=14
    )  # centre (15, 8), side 10 + 2 * 2
    assert pp.brain_box(np.zeros((8, 6, 4), bool), margin=2) == pp.CropBox(0, 0, 8, 6)


def test_skull_strip_warning_only_for_more_than_a_brain():
    case = small_case(seed=1)
    brain = pp.brain_mask(case.images)
    assert pp.skull_strip_warning(brain, case.voxel_volume_ml) is None  # a skull-stripped phantom
    everything = np.ones_like(brain)  # a noisy background: every voxel non-zero
    assert "does not look skull-stripped" in pp.skull_strip_warning(everything, case.voxel_volume_ml)
    # 25 % of the grid but 3 L: a head with its skull in a large field of view.
    assert "3.0 L" in pp.skull_strip_warning(brain, 3000.0 / np.count_nonzero(brain))


def test_coronal_slices_are_the_canonical_volume_resliced():
    """A coronal model reads the y planes: the same as the axial pipeline on the volume with y and z swapped."""
    case = small_case(seed=2)
    swapped = {name: np.ascontiguousarray(volume.transpose(0, 2, 1)) for name, volume in case.images.items()}
    coronal = pp.prepare_volume(case.images, CORONAL)
    axial = pp.prepare_volume(swapped, pp.DEFAULT_PREPROCESS)
    np.testing.assert_allclose(coronal.channels, axial.channels, atol=1e-5)
    np.testing.assert_array_equal(coronal.brain, axial.brain)
    # Labels restored from a coronal prediction land on the canonical grid, not the swapped one.
    classes = pp.prepare_label(case.label, coronal, 128)
    labels = pp.restore_labels(pp.one_hot(classes), coronal)
    assert labels.shape == case.shape
    tumor = case.label > 0
    assert (labels > 0)[tumor].mean() > 0.85 and (labels > 0)[~tumor].mean() < 0.01


def test_planes_round_trip_and_only_known_planes_are_accepted():
    volume = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    for plane in pp.PLANE_AXES:
        np.testing.assert_array_equal(pp.from_plane(pp.to_plane(volume, plane), plane), volume)
    assert pp.to_plane(volume, "coronal").shape == (2, 4, 3, 5)
    with pytest.raises(InputError, match="plane must be one of axial, coronal"):
        replace(pp.DEFAULT_PREPROCESS, plane="sagittal")
    # Axial settings serialise as before the setting existed (old models and slice caches match).
    assert "plane" not in pp.DEFAULT_PREPROCESS.to_dict()
    assert pp.PreprocessConfig.from_dict(CORONAL.to_dict()) == CORONAL
