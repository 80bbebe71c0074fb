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
