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
