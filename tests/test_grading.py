"""Grade features and the JSON logistic model."""

from __future__ import annotations

import json

import pytest

from neuroinsight.errors import InputError
from neuroinsight.grading import FEATURE_NAMES, fit_grade_model, grade_features, load_grade_model
from tests.conftest import REPO, small_case


def test_features_and_a_fitted_model_round_trip(tmp_path):
    cases = [small_case(seed=s, tumor_radius_mm=r) for s, r in enumerate((6, 7, 8, 9, 10, 11))]
    features = [grade_features(c.label, c.images, c.spacing_mm) for c in cases]
    assert set(features[0]) == set(FEATURE_NAMES)
    grades = ["LGG", "LGG", "HGG", "HGG", "HGG", "HGG"]
    model = fit_grade_model(features, grades)
    assert 0 <= model.evaluation["auc"] <= 1 and model.evaluation["n_lgg"] == 2
    path = tmp_path / "g.json"
    path.write_text(model.to_json())
    loaded = load_grade_model(path)
    for f in features:
        p = loaded.predict_proba(f)
        assert 0 <= p <= 1 and p == pytest.approx(model.predict_proba(f))


def test_shipped_classifier_is_plain_json():
    path = REPO / "models" / "grade_classifier.json"
    data = json.loads(path.read_text())  # would fail on a pickle
    assert data["feature_names"] == list(FEATURE_NAMES)
    assert {"auc", "balanced_accuracy", "n_cases"} <= set(data["evaluation"])


def test_broken_classifier_file_is_an_input_error(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"feature_names": ["a"]}))
    with pytest.raises(InputError):
        load_grade_model(path)
