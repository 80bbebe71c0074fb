"""Cross-validation: folds are patient-disjoint and every test patient is scored once per preset."""

from __future__ import annotations

import json

import pytest

from neuroinsight import io
from neuroinsight.crossval import run_crossval
from neuroinsight.preprocessing import PreprocessConfig


@pytest.mark.slow
def test_crossval_scores_each_patient_once(phantom_data_dir, tmp_path):
    overrides = {
        "epochs": 1,
        "batch_size": 8,
        "filters": (4, 8, 16),
        "bottleneck": 32,
        "preprocess": PreprocessConfig(image_size=32, slice_range=(10, 30)),
        "precision": "float32",
    }
    rows = run_crossval(
        phantom_data_dir,
        ["improved"],
        tmp_path / "work",
        n_folds=3,
        overrides=overrides,
        precision="float32",
        cache_dir=tmp_path / "cache",
    )
    cases = [p.name for p in io.list_cases(phantom_data_dir)]
    scored = sorted({(r["case"], r["fold"]) for r in rows})
    assert sorted(c for c, _ in scored) == sorted(cases)  # every patient tested exactly once
    assert len(rows) == len(cases) * 3
    for fold in range(3):
        info = (tmp_path / "work" / f"improved_fold{fold}.json").read_text()
        split = json.loads(info)["split"]
        assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))
