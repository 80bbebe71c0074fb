"""Every augmentation keeps labels aligned with the images (a phantom's tumor stays where its labels are)."""

from __future__ import annotations

import numpy as np
import pytest

from neuroinsight import augmentation as aug
from neuroinsight.preprocessing import DEFAULT_PREPROCESS, prepare_label, prepare_volume
from tests.conftest import small_case


@pytest.fixture(scope="module")
def slice_pair():
    """A FLAIR+T1ce slice through a phantom tumor and its classes (FLAIR is bright exactly on the tumor)."""
    case = small_case(seed=5, tumor_radius_mm=12.0)
    prepared = prepare_volume(case.images, DEFAULT_PREPROCESS)
    classes = prepare_label(case.label, prepared, DEFAULT_PREPROCESS.image_size)
    z = int(np.argmax((classes > 0).sum(axis=(1, 2))))
    return prepared.slices[z].copy(), classes[z].copy()


def _alignment(images: np.ndarray, classes: np.ndarray) -> float:
    """Dice between 'bright on FLAIR' and 'labelled tumor'."""
    flair = images[..., 1]
    brain = flair != 0
    bright = flair > np.percentile(flair[brain], 90)
    tumor = classes > 0
    return 2 * (bright & tumor).sum() / (bright.sum() + tumor.sum())


SINGLE = {
    "flip": aug.AugmentConfig(flip_prob=1.0),
    "rotate": aug.AugmentConfig(rotate_deg=15, prob=1.0),
    "scale": aug.AugmentConfig(scale=0.15, prob=1.0),
    "intensity scale/shift": aug.AugmentConfig(intensity_scale=0.3, intensity_shift=0.4, prob=1.0),
    "gamma": aug.AugmentConfig(gamma=0.4, prob=1.0),
    "bias field": aug.AugmentConfig(bias_field=0.3, prob=1.0),
    "noise": aug.AugmentConfig(noise_std=0.1, prob=1.0),
    "blur": aug.AugmentConfig(blur_sigma=1.5, prob=1.0),
    "elastic": aug.AugmentConfig(elastic_px=4.0, prob=1.0),
    "all (robust preset)": aug.ROBUST,
    "all (strong preset)": aug.STRONG,
    "all (lowres preset)": aug.LOWRES,
    "all (elastic preset)": aug.ELASTIC,
    "all (geometric preset)": aug.GEOMETRIC,
}


@pytest.mark.parametrize("name", list(SINGLE))
def test_transform_keeps_labels_aligned(slice_pair, name):
    images, classes = slice_pair
    before = _alignment(images, classes)
    assert before > 0.5  # the check can fail: FLAIR marks the tumor
    rng = np.random.default_rng(1)
    for _ in range(5):
        out_images, out_classes = aug.augment_slice(images.copy(), classes.copy(), SINGLE[name], rng)
        assert out_images.shape == images.shape and out_images.dtype == np.float32
        assert set(np.unique(out_classes)) <= set(np.unique(classes))
        assert _alignment(out_images, out_classes) > before - 0.15, name


def test_misaligned_labels_are_detected(slice_pair):
    images, classes = slice_pair
    shifted = np.roll(classes, 20, axis=0)
    assert _alignment(images, shifted) < _alignment(images, classes) - 0.3


def test_geometric_transforms_move_images_and_labels_together(slice_pair):
    images, classes = slice_pair
    flipped_images, flipped_classes = aug.flip(images, classes)
    np.testing.assert_array_equal(flipped_classes, classes[::-1])
    np.testing.assert_array_equal(flipped_images, images[::-1])
    rotated_images, rotated_classes = aug.rotate_scale(images, classes, 90.0, 1.0)
    np.testing.assert_array_equal(rotated_classes[1:-1, 1:-1], np.rot90(classes)[1:-1, 1:-1])
    assert rotated_images.shape == images.shape


def test_elastic_deformation_moves_images_and_labels_by_the_same_field(slice_pair):
    images, classes = slice_pair
    zero = np.zeros((*classes.shape, 2), np.float32)
    same_images, same_classes = aug.elastic_deform(images, classes, zero)
    np.testing.assert_allclose(same_images, images, atol=1e-5)
    np.testing.assert_array_equal(same_classes, classes)
    shift = zero.copy()
    shift[..., 1] = 3.0  # every pixel samples 3 rows further: a shift of 3 rows up
    moved_images, moved_classes = aug.elastic_deform(images, classes, shift)
    np.testing.assert_array_equal(moved_classes[:-3], classes[3:])
    np.testing.assert_allclose(moved_images[:-3], images[3:], atol=1e-5)
    field = aug.elastic_field(classes.shape, 3.0, np.random.default_rng(0))
    assert field.shape == (*classes.shape, 2)
    assert 0.5 < field.std() < 6.0  # a few pixels, as asked
    assert np.abs(np.diff(field, axis=0)).max() < 1.0  # smooth: neighbours move almost alike


def test_intensity_transforms_leave_background_at_zero(slice_pair):
    images, classes = slice_pair
    background = ~np.any(images != 0, axis=-1)
    out, _ = aug.augment_slice(
        images, classes, aug.AugmentConfig(intensity_shift=0.5, noise_std=0.2, prob=1.0), np.random.default_rng(0)
    )
    assert (out[background] == 0).all()


def test_grouped_channels_share_one_intensity_draw(slice_pair):
    """With 2.5-D input a modality's neighbouring slices get the same gain, offset and gamma."""
    images, classes = slice_pair
    stacked = np.repeat(images, 3, axis=-1)  # each modality three times, as its z-neighbours would be
    config = aug.AugmentConfig(intensity_scale=0.3, intensity_shift=0.4, gamma=0.4, prob=1.0)
    out, _ = aug.augment_slice(stacked, classes, config, np.random.default_rng(2), group=3)
    for first in (0, 3):
        np.testing.assert_array_equal(out[..., first], out[..., first + 1])
        np.testing.assert_array_equal(out[..., first], out[..., first + 2])
    ungrouped, _ = aug.augment_slice(stacked, classes, config, np.random.default_rng(2))
    assert not np.array_equal(ungrouped[..., 0], ungrouped[..., 1])  # the check can fail


def test_blur_softens_one_channel_along_one_axis(slice_pair):
    """Blur as a thick-slice acquisition would: only the drawn channel and axis lose detail."""
    images, _ = slice_pair
    brain = np.any(images != 0, axis=-1)
    out = aug.blur(images, brain, np.array([[0.0, 2.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(out[..., 1], images[..., 1])
    assert (out[~brain] == 0).all()

    def detail(x: np.ndarray, axis: int) -> float:
        return float(np.abs(np.diff(x, axis=axis)).mean())

    assert detail(out[..., 0], 1) < 0.7 * detail(images[..., 0], 1)  # the blurred axis (columns)
    assert detail(out[..., 0], 0) > 0.8 * detail(images[..., 0], 0)  # rows keep most of their detail


def test_modality_dropout_blanks_one_whole_modality(slice_pair):
    """Each draw blanks exactly one modality (all its 2.5-D channels) and leaves the rest and labels alone."""
    images, classes = slice_pair
    stacked = np.repeat(images, 2, axis=-1)  # two modalities, two z-neighbours each
    config = aug.AugmentConfig(modality_dropout=1.0)
    rng = np.random.default_rng(3)
    dropped = []
    for _ in range(20):
        out, out_classes = aug.augment_slice(stacked, classes, config, rng, group=2)
        np.testing.assert_array_equal(out_classes, classes)
        blank = [m for m in range(2) if not out[..., 2 * m : 2 * m + 2].any()]
        assert len(blank) == 1
        kept = 1 - blank[0]
        np.testing.assert_array_equal(out[..., 2 * kept : 2 * kept + 2], stacked[..., 2 * kept : 2 * kept + 2])
        dropped.append(blank[0])
    assert set(dropped) == {0, 1}  # either modality can go


def test_modality_dropout_keeps_a_single_modality_and_its_rate(slice_pair):
    images, classes = slice_pair
    always = aug.AugmentConfig(modality_dropout=1.0)
    out, _ = aug.augment_slice(images[..., 1:], classes, always, np.random.default_rng(0))
    assert out.any()  # nothing left to segment from otherwise
    rng = np.random.default_rng(4)
    blanked = [(~aug.augment_slice(images, classes, aug.MODDROP, rng)[0].any(axis=(0, 1))).any() for _ in range(400)]
    assert 0.15 < np.mean(blanked) < 0.35  # MODDROP drops a modality in about a quarter of slices


def test_carve_mix_pastes_the_donor_tumor_with_its_own_labels(slice_pair):
    images, classes = slice_pair
    recipient_images, recipient_classes = images.copy(), np.zeros_like(classes)  # a slice without tumor
    recipient_images[recipient_images != 0] *= 0.5  # tell the two slices apart
    mixed = aug.carve_mix(recipient_images, recipient_classes, images, classes, margin_px=3.0)
    assert mixed is not None
    out_images, out_classes = mixed
    tumor = classes > 0
    np.testing.assert_array_equal(out_classes[tumor], classes[tumor])  # the whole tumor, exact labels
    np.testing.assert_array_equal(out_images[tumor], images[tumor])
    assert _alignment(out_images, out_classes) > 0.5
    carved = (out_images != recipient_images).any(axis=-1)
    assert carved.sum() > tumor.sum()  # a margin of the donor's surroundings came along...
    assert (out_classes[carved & ~tumor] == 0).all()  # ...labelled as the donor's background
    far = ~carved
    np.testing.assert_array_equal(out_images[far], recipient_images[far])  # the rest is untouched


def test_carve_mix_declines_a_tumor_outside_the_recipient_brain(slice_pair):
    images, classes = slice_pair
    shifted = np.roll(images, images.shape[0] // 2, axis=0)  # the recipient's brain elsewhere
    shifted[: images.shape[0] // 2] = 0
    assert aug.carve_mix(shifted, np.zeros_like(classes), images, classes, margin_px=3.0) is None
    assert aug.carve_mix(images, classes, images, np.zeros_like(classes), margin_px=3.0) is None
