"""Metrics on hand-made masks with known answers, the empty-mask rules, and an independent HD95."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroinsight import metrics
from neuroinsight.errors import InputError


def _cube(shape, start, size):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def test_dice_iou_and_rates_on_known_masks():
    ref = _cube((10, 10, 10), (0, 0, 0), 4)  # 64 voxels
    pred = _cube((10, 10, 10), (0, 0, 2), 4)  # overlaps 32
    s = metrics.score_region(pred, ref, spacing_mm=(1, 1, 1))
    assert s.dice == pytest.approx(2 * 32 / 128)
    assert s.iou == pytest.approx(32 / 96)
    assert s.sensitivity == pytest.approx(0.5)
    assert s.precision == pytest.approx(0.5)
    assert s.specificity == pytest.approx(1 - 32 / (1000 - 64))
    assert s.volume_diff_ml == 0.0
    assert s.volume_error_pct == 0.0
    larger = metrics.score_region(_cube((10, 10, 10), (0, 0, 0), 5), ref, spacing_mm=(2, 1, 1))
    assert larger.volume_diff_ml == pytest.approx((125 - 64) * 2 / 1000)
    assert larger.volume_error_pct == pytest.approx(100 * (125 - 64) / 64)


def test_empty_mask_conventions():
    empty = np.zeros((8, 8, 8), bool)
    some = _cube((8, 8, 8), (2, 2, 2), 2)
    both = metrics.score_region(empty, empty, spacing_mm=(1, 1, 1))
    assert (both.dice, both.iou, both.hd95_mm) == (1.0, 1.0, 0.0)
    missed = metrics.score_region(empty, some, spacing_mm=(1, 1, 1))
    assert (missed.dice, missed.hd95_mm) == (0.0, metrics.HD95_EMPTY_MM)
    invented = metrics.score_region(some, empty, spacing_mm=(1, 1, 1))
    assert (invented.dice, invented.hd95_mm) == (0.0, metrics.HD95_EMPTY_MM)
    assert math.isnan(invented.volume_error_pct) and math.isnan(both.volume_error_pct)  # no true volume
    assert missed.volume_error_pct == -100.0


def test_hd95_uses_the_spacing():
    ref = _cube((20, 20, 20), (5, 5, 5), 5)
    pred = _cube((20, 20, 20), (5, 5, 8), 5)  # shifted 3 voxels along z
    iso = metrics.compute_hd95(pred, ref, spacing_mm=(1, 1, 1))
    aniso = metrics.compute_hd95(pred, ref, spacing_mm=(1, 1, 2.5))
    assert iso == pytest.approx(3.0)
    assert aniso == pytest.approx(7.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hd95_agrees_with_medpy(seed):
    from medpy.metric.binary import hd95

    rng = np.random.default_rng(seed)
    from scipy import ndimage

    ref = ndimage.binary_opening(rng.random((30, 30, 20)) > 0.6, iterations=1)
    pred = ndimage.binary_opening(rng.random((30, 30, 20)) > 0.6, iterations=1)
    spacing = (1.0, 0.8, 2.0)
    ours = metrics.compute_hd95(pred, ref, spacing_mm=spacing)
    theirs = hd95(pred, ref, voxelspacing=spacing, connectivity=3)
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_regions_volumes_and_case_scores():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[0:2] = 1
    labels[2:5] = 2
    labels[5:6] = 4
    volumes = metrics.region_volumes_ml(labels, (2.0, 1.0, 1.0))
    assert volumes == pytest.approx({"NCR": 0.4, "ED": 0.6, "ET": 0.2, "WT": 1.2, "TC": 0.6})
    scores = metrics.score_case(labels, labels, spacing_mm=(1, 1, 1))
    assert {r: s.dice for r, s in scores.items()} == {"WT": 1.0, "TC": 1.0, "ET": 1.0}


def test_per_slice_dice_and_confusion_matrix():
    ref = np.zeros((4, 4, 3), np.uint8)
    ref[:2, :, 0] = 2
    pred = ref.copy()
    pred[:, :, 1] = 2  # false positives on slice 1; slice 2 empty in both
    curve = metrics.per_slice_dice(pred, ref, (1, 2, 4))
    assert curve[0] == 1.0 and curve[1] == 0.0 and np.isnan(curve[2])
    matrix = metrics.confusion_matrix(pred, ref)
    assert matrix.sum() == ref.size
    assert matrix[0, 2] == 16  # background predicted as edema
    assert matrix[2, 2] == 8


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="differs"):
        metrics.score_case(np.zeros((3, 3, 3)), np.zeros((3, 3, 4)), spacing_mm=(1, 1, 1))


def test_summarise_gives_mean_median_std():
    rows = [{"region": "WT", **{m: v for m in metrics.METRIC_NAMES}} for v in (0.2, 0.4, 0.9)]
    summary = metrics.summarise(rows)
    assert summary["WT"]["dice"]["mean"] == pytest.approx(0.5)
    assert summary["WT"]["dice"]["median"] == pytest.approx(0.4)
    assert summary["WT"]["dice"]["std"] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))  # over patients
    assert summary["WT"]["dice"]["n"] == 3


def test_every_metric_has_a_label_and_a_display_format():
    from neuroinsight.metrics import METRIC_FORMATS, METRIC_LABELS, METRIC_NAMES

    assert set(METRIC_LABELS) == set(METRIC_FORMATS) == set(METRIC_NAMES)
    assert format(0.99654, METRIC_FORMATS["specificity"]) == "0.9965"
    assert format(-8.44, METRIC_FORMATS["volume_error_pct"]) == "-8.4"
