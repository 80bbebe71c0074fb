"""Property-based tests (hypothesis): metric invariants and NIfTI round trips of random geometry."""

from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuroinsight import io, metrics

masks = st.tuples(st.integers(2, 9), st.integers(2, 9), st.integers(2, 6)).flatmap(
    lambda shape: st.tuples(arrays(bool, shape), arrays(bool, shape))
)
spacings = st.tuples(*[st.floats(0.3, 5.0) for _ in range(3)])


@given(masks, spacings)
@settings(max_examples=80, deadline=None)
def test_dice_symmetric_and_bounded_hd95_nonnegative(pair, spacing):
    a, b = pair
    dice = metrics.compute_dice(a, b)
    assert 0.0 <= dice <= 1.0
    assert dice == metrics.compute_dice(b, a)
    hd = metrics.compute_hd95(a, b, spacing_mm=spacing)
    assert hd >= 0.0
    assert metrics.compute_hd95(a, a, spacing_mm=spacing) == 0.0
    assert metrics.compute_dice(a, a) == 1.0


ORIENTATIONS = ["RAS", "LPS", "LAS", "RPI", "PLS", "SRA", "ILP"]


@given(
    shape=st.tuples(st.integers(16, 24), st.integers(16, 24), st.integers(16, 20)),
    spacing=spacings,
    codes=st.sampled_from(ORIENTATIONS),
    offset=st.tuples(*[st.floats(-100, 100) for _ in range(3)]),
    seed=st.integers(0, 1000),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_save_load_round_trip_for_random_geometry(shape, spacing, codes, offset, seed):
    rng = np.random.default_rng(seed)
    ornt = nib.orientations.axcodes2ornt(tuple(codes))
    linear = np.zeros((3, 3))
    for source_axis, (world_axis, flip) in enumerate(ornt.astype(int)):
        linear[world_axis, source_axis] = flip * spacing[source_axis]
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = offset
    label = rng.choice(np.array([0, 1, 2, 4], np.uint8), size=shape)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for key in ("t1ce", "flair"):
            nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32) + 1, affine), folder / f"p_{key}.nii.gz")
        nib.save(nib.Nifti1Image(label, affine), folder / "p_seg.nii.gz")
        case = io.load_case(folder)
        assert case.source_orientation == codes
        assert nib.aff2axcodes(nib.as_closest_canonical(nib.Nifti1Image(label, affine)).affine) == ("R", "A", "S")
        out = io.save_label_map(case.label, case, folder / "out.nii.gz")
        saved = nib.load(out)
        np.testing.assert_array_equal(np.asarray(saved.dataobj), label)
        np.testing.assert_allclose(saved.affine, affine, atol=1e-5)
        expected = [0.0, 0.0, 0.0]  # canonical axis w is the source axis that points along world axis w
        for source_axis, (world_axis, _) in enumerate(ornt.astype(int)):
            expected[world_axis] = spacing[source_axis]
        np.testing.assert_allclose(case.spacing_mm, expected, rtol=1e-5)
