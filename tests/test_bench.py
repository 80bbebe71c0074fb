"""`bench --quick` runs end to end and prints every figure (a smoke test: no timing is asserted)."""

from __future__ import annotations

import pytest

from neuroinsight.cli import main
from tests.conftest import REPO


@pytest.mark.slow
def test_quick_bench_prints_its_figures(capsys, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--model", str(REPO / "models" / "attention_unet.keras"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in (
        "forward / matmul",
        "segment end to end",
        "viewer slider",
        "PDF report",
        "peak RSS",
        "batch evaluation",
    ):
        assert name in printed, name
    assert out.read_text().startswith("[")


def test_et_contrast_sees_enhancement_and_its_absence():
    """`bench/crossval/et_contrast.py`: a phantom's bright rim reads as enhancing; flattened, it does not."""
    import dataclasses

    import numpy as np

    from bench.crossval.et_contrast import contrast
    from neuroinsight.phantom import make_case

    case = make_case(shape=(96, 96, 64))
    et = case.label == 4
    enhancing = contrast(case)
    assert enhancing["et_ml"] == pytest.approx(et.sum() * case.voxel_volume_ml)
    assert enhancing["t1ce_z_median"] > 1 and enhancing["bright_fraction"] > 0.9
    assert enhancing["t1ce_minus_t1_median"] > 1

    t1ce = case.images["t1ce"].copy()
    t1ce[et] = np.median(t1ce[case.images["t1"] > 0])  # the label stays, the enhancement goes
    flat = contrast(dataclasses.replace(case, images={**case.images, "t1ce": t1ce}))
    assert abs(flat["t1ce_z_median"]) < 0.5 and flat["bright_fraction"] == 0


def test_tta_views_are_undone_before_they_are_averaged():
    """`bench/crossval/tta.py`: a warped view warped back lands on the original; the forward warp moves it."""
    import numpy as np

    from bench.crossval.tta import VARIANTS, warp

    # A smooth off-centre blob: rotations and zooms move it, and two linear interpolations blur it little.
    rows, cols = np.mgrid[:64, :64]
    blob = np.exp(-((rows - 22) ** 2 + (cols - 42) ** 2) / (2 * 5.0**2)).astype(np.float32)
    batch = np.repeat(blob[None, ..., None], 2, axis=0).repeat(3, axis=-1)
    for angle, zoom in VARIANTS["rotzoom"]:
        moved = warp(batch, angle, zoom)
        assert moved.shape == batch.shape
        assert np.abs(moved - batch).max() > 0.2, (angle, zoom)
        back = warp(moved, angle, zoom, inverse=True)
        assert np.abs(back - batch).max() < 0.03, (angle, zoom)


def test_cascade_crop_holds_the_tumor_and_stage_two_keeps_the_whole_tumor(tiny_model_path):
    """`bench/crossval/cascade.py`: the test-time crop contains stage 1's tumor with its margin, and
    stage 2 re-decides only core and enhancing tumor inside stage 1's whole tumor."""
    import numpy as np

    from bench.crossval.cascade import TEST_MARGIN, normalised, refine, tumor_square
    from neuroinsight.model import load_model
    from tests.conftest import small_case

    case = small_case()
    tumor = case.label > 0
    box, z = tumor_square(tumor, TEST_MARGIN)
    inside = box.crop(tumor.astype(np.uint8))[:, :, z]
    assert inside.sum() == tumor.sum()  # nothing of the tumor is cut off
    assert box.size_x == box.size_y >= 2 * TEST_MARGIN
    refined = refine(case.label, normalised(case, ("t1ce", "flair")), load_model(tiny_model_path), 32)
    np.testing.assert_array_equal(refined > 0, tumor)
    assert set(np.unique(refined[tumor])) <= {1, 2, 4}
