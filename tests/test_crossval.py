"""Cross-validation: folds are patient-disjoint and every test patient is scored once per preset."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from neuroinsight import io
from neuroinsight.cli import main
from neuroinsight.crossval import (
    DEFAULT_POST,
    POST_VARIANTS,
    compare_variants,
    mean_ci,
    read_rows,
    recipe_name,
    run_crossval,
    site_of,
)
from neuroinsight.inference import (
    BEFORE_CORE_ISLANDS,
    DEFAULT_POSTPROCESS,
    accuracy_text,
    read_model_info,
    update_model_info,
)
from neuroinsight.metrics import METRIC_NAMES
from neuroinsight.pipeline import rows_to_csv
from neuroinsight.preprocessing import PreprocessConfig

#: Training settings of a one-epoch run of a tiny network on the phantoms.
TINY_RUN = {
    "epochs": 1,
    "batch_size": 8,
    "filters": (4, 8, 16),
    "bottleneck": 32,
    "preprocess": PreprocessConfig(image_size=32, slice_range=(10, 30)),
    "precision": "float32",
}


@pytest.mark.slow
def test_crossval_scores_each_patient_once(phantom_data_dir, tmp_path):
    common = {"n_folds": 3, "overrides": TINY_RUN, "precision": "float32"}
    rows = run_crossval(phantom_data_dir, ["improved"], tmp_path / "work", cache_dir=tmp_path / "cache", **common)
    cases = [p.name for p in io.list_cases(phantom_data_dir)]
    scored = sorted({(r["case"], r["fold"]) for r in rows})
    assert sorted(c for c, _ in scored) == sorted(cases)  # every patient tested exactly once
    assert len(rows) == len(cases) * 3
    for fold in range(3):
        info = (tmp_path / "work" / f"improved_fold{fold}.json").read_text()
        split = json.loads(info)["split"]
        assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))

    # Scoring new inference variants of the finished run keeps its models untouched.
    models = sorted((tmp_path / "work").glob("improved_fold*.keras"))
    stamps = [m.stat().st_mtime_ns for m in models]
    rescored = run_crossval(
        phantom_data_dir,
        ["improved"],
        tmp_path / "work",
        posts=POST_VARIANTS,
        tta_options=(False, True),
        reuse_models=True,
        **common,
    )
    assert [m.stat().st_mtime_ns for m in models] == stamps
    assert len(rescored) == len(cases) * 3 * 2 * len(POST_VARIANTS)
    plain = {(r["case"], r["region"]): r["dice"] for r in rows}
    for r in rescored:
        if (r["tta"], r["post"]) == ("off", "none"):
            assert r["dice"] == plain[r["case"], r["region"]]  # same model, same prediction

    # The fold models' JSONs tell the robustness check which patients each may be scored on.
    out = tmp_path / "shifts.csv"
    args = ["--data", str(phantom_data_dir), "--shifts", "none", "bias", "--precision", "float32", "--out", str(out)]
    assert main(["robustness", str(models[0]), *args]) == 0
    shifted = read_rows([out])
    test_ids = json.loads(models[0].with_suffix(".json").read_text())["split"]["test"]
    assert {r["case"] for r in shifted} == set(test_ids)
    assert sorted({r["shift"] for r in shifted}) == ["bias", "none"]
    assert len(shifted) == len(test_ids) * 2 * 3 and {r["preset"] for r in shifted} == {"improved"}
    unshifted = {(r["case"], r["region"]): float(r["dice"]) for r in shifted if r["shift"] == "none"}
    same = {(r["case"], r["region"]): r["dice"] for r in rescored if (r["tta"], r["post"]) == ("off", DEFAULT_POST)}
    for key, dice in unshifted.items():  # no shift: the same prediction as crossval's default post-processing
        assert dice == pytest.approx(same[key], abs=1e-5)


@pytest.mark.slow
def test_crossval_without_validation_patients_trains_on_every_other_patient(phantom_data_dir, tmp_path):
    overrides = {**TINY_RUN, "select": "last"}
    common = {"n_folds": 3, "folds": [0], "overrides": overrides, "precision": "float32"}
    rows = run_crossval(phantom_data_dir, ["improved"], tmp_path, n_val=0, **common)
    split = json.loads((tmp_path / "improved+val0_fold0.json").read_text())["split"]
    cases = {p.name for p in io.list_cases(phantom_data_dir)}
    assert split["val"] == [] and set(split["train"]) == cases - set(split["test"])
    assert {r["preset"] for r in rows} == {"improved+val0"} and {r["case"] for r in rows} == set(split["test"])

    # Another training seed on the same folds: a separate recipe, same patients, other weights.
    reseeded = run_crossval(phantom_data_dir, ["improved"], tmp_path, n_val=0, train_seed=1, **common)
    info = json.loads((tmp_path / "improved+val0+seed1_fold0.json").read_text())
    assert info["split"] == split and info["train"]["seed"] == 1
    assert json.loads((tmp_path / "improved+val0_fold0.json").read_text())["train"]["seed"] == 0
    assert {r["preset"] for r in reseeded} == {"improved+val0+seed1"}
    assert {r["case"] for r in reseeded} == set(split["test"])
    from neuroinsight.model import load_model

    first, second = (load_model(tmp_path / f"improved+val0{s}_fold0.keras") for s in ("", "+seed1"))
    assert not np.array_equal(first.get_weights()[0], second.get_weights()[0])

    # Every row names the sites its fold model trained on (crossval-table's "site seen").
    sites = {site_of(c) for c in split["train"]}  # phantom ids carry no site: each is its own
    assert {r["train_sites"] for r in rows} == {" ".join(sorted(sites))}

    # A longer training of the same recipe: named by its epochs, so the standard run's fold
    # model stays as it was (the argument wins over the overrides' epoch count).
    standard = tmp_path / "improved+val0_fold0.keras"
    stamp = standard.stat().st_mtime_ns
    longer = run_crossval(phantom_data_dir, ["improved"], tmp_path, n_val=0, epochs=2, **common)
    assert {r["preset"] for r in longer} == {"improved+val0+e2"} and standard.stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "improved+val0+e2_fold0.json").read_text())["epochs_run"] == 2

    # Another batch size likewise: named by it, trained with it, the standard run left alone.
    smaller = run_crossval(phantom_data_dir, ["improved"], tmp_path, n_val=0, batch_size=4, **common)
    assert {r["preset"] for r in smaller} == {"improved+val0+bs4"} and standard.stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "improved+val0+bs4_fold0.json").read_text())["train"]["batch_size"] == 4

    # 2.5-D input at another input size: a separate recipe whose network reads each modality's
    # neighbouring slices too, at 40x40 instead of the overridden 32x32.
    context_rows = run_crossval(phantom_data_dir, ["improved"], tmp_path, n_val=0, context=1, image_size=40, **common)
    assert {r["preset"] for r in context_rows} == {"improved+ctx1+s40+val0"}
    assert {r["case"] for r in context_rows} == set(split["test"])
    context_model = load_model(tmp_path / "improved+ctx1+s40+val0_fold0.keras")
    assert context_model.input_shape == (None, 40, 40, 3 * len(PreprocessConfig().modalities))

    # Coronal slices: a separate recipe, trained and scored on the same patients; the model
    # records its plane, so inference slices new cases the same way.
    coronal_rows = run_crossval(phantom_data_dir, ["improved"], tmp_path, n_val=0, plane="coronal", **common)
    assert {r["preset"] for r in coronal_rows} == {"improved+coronal+val0"}
    assert {r["case"] for r in coronal_rows} == set(split["test"])
    coronal_info = json.loads((tmp_path / "improved+coronal+val0_fold0.json").read_text())
    assert coronal_info["preprocess"]["plane"] == "coronal" and coronal_info["split"] == split

    # Instance normalization, with resume on: no killed run to continue, so the fold trains
    # afresh (test_model.py kills and resumes a training run for real).
    norm_overrides = {**overrides, "norm": "instance"}
    norm_rows = run_crossval(
        phantom_data_dir, ["improved"], tmp_path, n_val=0, resume=True, **common | {"overrides": norm_overrides}
    )
    assert {r["preset"] for r in norm_rows} == {"improved+instance+val0"}
    norm_model = load_model(tmp_path / "improved+instance+val0_fold0.keras")
    assert any(type(layer).__name__ == "GroupNormalization" for layer in norm_model.layers)
    assert json.loads((tmp_path / "improved+instance+val0_fold0.json").read_text())["epochs_run"] == TINY_RUN["epochs"]

    # A wider network: a separate recipe named by its filters, whose model has them.
    wide_rows = run_crossval(
        phantom_data_dir, ["improved"], tmp_path, n_val=0, filters=(6, 12, 24), bottleneck=48, **common
    )
    assert {r["preset"] for r in wide_rows} == {"improved+f6-12-24+b48+val0"}
    wide_info = json.loads((tmp_path / "improved+f6-12-24+b48+val0_fold0.json").read_text())
    assert wide_info["split"] == split
    assert wide_info["model"]["filters"] == [6, 12, 24] and wide_info["model"]["bottleneck"] == 48


def test_recipe_name_marks_overridden_loss_or_augmentation():
    from dataclasses import replace

    from neuroinsight.training import PRESET_CONFIGS

    four = PRESET_CONFIGS["four"]
    assert recipe_name("four", replace(four, epochs=3, batch_size=4)) == "four"
    assert recipe_name("four", replace(four, augment="robust")) == "four+robust"
    assert recipe_name("improved", replace(PRESET_CONFIGS["improved"], loss="ce", augment="none")) == "improved+ce+none"
    improved = PRESET_CONFIGS["improved"]
    assert recipe_name("improved", improved.with_input(context=1)) == "improved+ctx1"
    assert recipe_name("four", replace(four, augment="robust").with_input(plane="coronal")) == "four+robust+coronal"
    assert recipe_name("four", replace(four, augment="robust", norm="instance")) == "four+robust+instance"
    assert recipe_name("improved", replace(improved, deep_supervision=True)) == "improved+ds"
    assert recipe_name("improved", replace(improved, extra_planes=("coronal",))) == "improved+and-coronal"


def _row(post: str, case: str, fold: int, region: str, dice: float, volume_error: float) -> dict:
    scores = {**dict.fromkeys(METRIC_NAMES, 0.0), "dice": dice, "volume_error_pct": volume_error}
    keys = {"preset": "four", "tta": "off", "post": post, "fold": fold, "case": case, "model": "m", "region": region}
    return {**keys, **scores}


def test_crossval_table_summarises_each_variant_over_patients(tmp_path, capsys):
    patients = (("Brats18_X_1_1", 0, 0.6, 10.0), ("Brats18_X_2_1", 1, 0.8, -30.0), ("Brats18_Y_3_1", 1, 1.0, 25.0))
    rows = [
        _row("none", case, fold, region, dice, error)
        for case, fold, dice, error in patients
        for region in ("WT", "TC", "ET")
    ]
    rows += [{**r, "post": "largest", "dice": 0.5} for r in rows]
    # Two CSVs, as written by one process per fold, read back as strings.
    (tmp_path / "a.csv").write_text(rows_to_csv(rows[:9], extra_columns=["preset", "tta", "post", "fold"]))
    (tmp_path / "b.csv").write_text(rows_to_csv(rows[9:], extra_columns=["preset", "tta", "post", "fold"]))
    csvs = [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    model = tmp_path / "m.keras"
    model.write_bytes(b"")  # only its JSON sidecar is written
    update_model_info(model, "train", {"epochs": 3})
    assert (
        main(["crossval-table", *csvs, "--variant", "four", "off", "none", "--patients", "--record", str(model)]) == 0
    )
    summary, patients, recorded = capsys.readouterr().out.strip().split("\n\n")
    lines = summary.splitlines()
    assert len(lines) == 4  # header, rule, one line per variant
    largest, none = lines[2], lines[3]
    assert largest.startswith("| four | off | largest | 3 | 0.500 ± 0.000 |")
    assert none.startswith("| four | off | none | 3 | 0.800 ± 0.200 |")  # sample SD of 0.6, 0.8, 1.0
    assert none.endswith("| 2/3 |")  # |volume error| <= 25 % for the first and the last
    # A site counts as seen when another fold (the training side) holds a patient of it.
    assert patients.splitlines()[2:] == [
        "| Brats18_X_1_1 | 0 | X | yes | 0.600 | 0.600 | 0.600 | +10.0 |",
        "| Brats18_X_2_1 | 1 | X | yes | 0.800 | 0.800 | 0.800 | -30.0 |",
        "| Brats18_Y_3_1 | 1 | Y | no | 1.000 | 1.000 | 1.000 | +25.0 |",
    ]
    # --record stores the variant's means beside the model, for the app and the PDF report.
    info = read_model_info(model)
    assert info["train"] == {"epochs": 3}  # the rest of the JSON is kept
    cv = info["crossval"]
    assert (cv["preset"], cv["tta"], cv["post"], cv["folds"], cv["patients"]) == ("four", "off", "none", 2, 3)
    assert cv["dice"]["WT"] == pytest.approx(0.8) and cv["dice_sd"]["WT"] == pytest.approx(0.2)
    assert "crossval-table" in cv["command"] and "m.json" in recorded
    # Each patient's own Dice, for the Metrics page's figure and the note on a patient the model trained on.
    assert cv["per_patient"] == {
        "Brats18_X_1_1": {"WT": 0.6, "TC": 0.6, "ET": 0.6},
        "Brats18_X_2_1": {"WT": 0.8, "TC": 0.8, "ET": 0.8},
        "Brats18_Y_3_1": {"WT": 1.0, "TC": 1.0, "ET": 1.0},
    }
    low, high = cv["dice_ci"]["WT"]  # the mean's bootstrap interval, for the app and the PDF
    assert 0.6 <= low < 0.8 < high <= 1.0
    assert f"2-fold cross-validation of its recipe (3 patients) WT 0.80 ± 0.20 (95 % CI {low:.2f}-{high:.2f})" in (
        accuracy_text(info)
    )
    assert "measured before" not in accuracy_text(info)
    # Numbers recorded under the default before the core-island step say they were (the shipped models').
    earlier = {**info, "crossval": {**cv, "post": BEFORE_CORE_ISLANDS}}
    assert "measured before small tumor-core islands were relabelled edema" in accuracy_text(earlier)
    assert POST_VARIANTS[BEFORE_CORE_ISLANDS] == replace(DEFAULT_POSTPROCESS, core_island_fraction=0.0)
    # A model trained on every patient says so instead of quoting test patients it does not have.
    all_cases = {**info, "split": {"train": ["a", "b"], "val": ["c"], "test": []}}
    ending = "; this model was then trained on all 3 patients, so none is left to test it on"
    assert accuracy_text(all_cases).endswith(ending)
    assert accuracy_text({"split": {"train": ["a"], "val": [], "test": ["b"]}}) == "not measured yet"


def test_crossval_table_names_a_missing_file_or_variant(tmp_path, capsys):
    assert main(["crossval-table", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err
    old = _row("none", "Brats18_X_1_1", 0, "WT", 0.5, 1.0)
    del old["tta"]  # CSVs written before TTA was scored
    (tmp_path / "a.csv").write_text(rows_to_csv([old], ["preset", "post", "fold"]))
    assert main(["crossval-table", str(tmp_path / "a.csv"), "--variant", "four", "off", "none", "--patients"]) == 0
    # One fold alone does not tell which sites its model trained on...
    assert "| Brats18_X_1_1 | 0 | X | n/a |" in capsys.readouterr().out
    # ...unless its rows name them (crossval writes train_sites).
    for sites, seen in (("X Y", "yes"), ("Y", "no")):
        (tmp_path / "b.csv").write_text(rows_to_csv([{**old, "train_sites": sites}], ["preset", "post", "fold"]))
        assert main(["crossval-table", str(tmp_path / "b.csv"), "--variant", "four", "off", "none", "--patients"]) == 0
        assert f"| Brats18_X_1_1 | 0 | X | {seen} |" in capsys.readouterr().out
    assert main(["crossval-table", str(tmp_path / "a.csv"), "--variant", "four", "flip", "none", "--patients"]) == 2
    assert "four/flip/none" in capsys.readouterr().err
    assert main(["crossval-table", str(tmp_path / "a.csv"), "--patients"]) == 2
    assert "--variant" in capsys.readouterr().err
    assert main(["crossval-table", str(tmp_path / "a.csv"), "--group-by", "preset", "shift"]) == 2
    assert "No column shift" in capsys.readouterr().err
    assert main(["crossval-table", str(tmp_path / "a.csv"), "--group-by", "preset"]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith("| four | 1 | 0.500 ± 0.000 |")


def test_mean_ci_brackets_the_mean_and_matches_the_normal_interval_on_many_patients():
    rng = np.random.default_rng(1)
    many = rng.normal(0.7, 0.1, size=400)
    low, high = mean_ci(many)
    # Large samples: the bootstrap interval approaches mean +- 1.96 SD / sqrt(n).
    half_width = 1.96 * many.std(ddof=1) / np.sqrt(many.size)
    assert low < many.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)
    # A dozen patients give a wider interval than 400, and the same rows the same interval.
    dozen = many[:12]
    assert mean_ci(dozen)[1] - mean_ci(dozen)[0] > high - low
    assert mean_ci(dozen) == mean_ci(list(dozen[::-1]))  # order does not matter
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    with pytest.raises(ValueError):
        mean_ci([])


def test_compare_variants_pairs_patients_across_runs(tmp_path, capsys):
    cases = [f"Brats18_X_{i}_1" for i in range(10)]
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.9, size=len(cases))
    run_b = [_row("none", c, 0, "WT", d, 0.0) for c, d in zip(cases, base, strict=True)]
    # Run a: better on every patient by 0.02-0.04, and it scored one extra patient that b lacks.
    gains = rng.uniform(0.02, 0.04, size=len(cases))
    run_a = [_row("none", c, 0, "WT", d + g, 0.0) for c, d, g in zip(cases, base, gains, strict=True)]
    run_a.append(_row("none", "Brats18_Y_9_1", 0, "WT", 0.0, 0.0))
    (result,) = compare_variants(run_a, ("four", "off", "none"), run_b, ("four", "off", "none"), regions=["WT"])
    assert result.patients == 10  # only patients both runs scored
    assert result.difference == pytest.approx(gains.mean())
    assert 0.02 <= result.ci[0] < result.difference < result.ci[1] <= 0.04
    assert (result.better, result.worse) == (10, 0)
    assert result.p_value < 0.01  # exact two-sided Wilcoxon, all 10 differences positive: 2/1024
    # A variant against itself: no difference, p = 1.
    (same,) = compare_variants(run_b, ("four", "off", "none"), run_b, ("four", "off", "none"), regions=["WT"])
    assert (same.difference, same.ci, same.better, same.worse, same.p_value) == (0.0, (0.0, 0.0), 0, 0, 1.0)

    # The CLI reads the second run from other files and names both sides.
    columns = ["preset", "tta", "post", "fold"]
    (tmp_path / "a.csv").write_text(rows_to_csv(run_a, columns))
    (tmp_path / "b.csv").write_text(rows_to_csv(run_b, columns))
    args = ["crossval-table", str(tmp_path / "a.csv"), "--variant", "four", "off", "none", "--ci"]
    assert main([*args, "--against", "four", "off", "none", "--against-csv", str(tmp_path / "b.csv")]) == 0
    summary, comparison = capsys.readouterr().out.strip().split("\n\n")
    assert summary.splitlines()[2].startswith("| four | off | none | 11 | ")
    assert "] |" in summary.splitlines()[2]  # the Dice cell carries its interval
    wt = comparison.splitlines()[2]
    assert wt.startswith("| WT | 10 |") and "| 10 / 0 |" in wt
    assert "four/off/none (a) Dice" in comparison and "four/off/none (b) Dice" in comparison
    # Misuse is one message, not a traceback.
    assert main(["crossval-table", str(tmp_path / "a.csv"), "--against", "four", "off", "none"]) == 2
    assert "--variant" in capsys.readouterr().err
    assert main([*args, "--against-csv", str(tmp_path / "b.csv")]) == 2
    assert "--against-csv needs --against" in capsys.readouterr().err
    (tmp_path / "c.csv").write_text(rows_to_csv([_row("none", "Brats18_Z_1_1", 0, "WT", 0.5, 0.0)], columns))
    assert main([*args, "--against", "four", "off", "none", "--against-csv", str(tmp_path / "c.csv")]) == 2
    assert "share no patient" in capsys.readouterr().err


def test_crossval_table_refuses_a_patient_counted_twice(tmp_path, capsys):
    """Two runs of one recipe share a name; read together they would double every patient."""
    columns = ["preset", "tta", "post", "fold"]
    run = [_row("none", f"Brats18_X_{i}_1", 0, "WT", 0.5 + i / 10, 0.0) for i in range(3)]
    (tmp_path / "run1.csv").write_text(rows_to_csv(run, columns))
    (tmp_path / "run2.csv").write_text(rows_to_csv(run, columns))
    both = [str(tmp_path / "run1.csv"), str(tmp_path / "run2.csv")]
    assert main(["crossval-table", *both]) == 2
    assert "Brats18_X_0_1 (WT) more than once" in capsys.readouterr().err
    variant = ["--variant", "four", "off", "none", "--against", "four", "off", "none"]
    assert main(["crossval-table", both[0], *variant, "--against-csv", *both]) == 2
    assert "more than once" in capsys.readouterr().err
    # Pooling variants by grouping on fewer columns is refused the same way.
    other_post = [{**r, "post": "largest"} for r in run]
    (tmp_path / "posts.csv").write_text(rows_to_csv(run + other_post, columns))
    assert main(["crossval-table", str(tmp_path / "posts.csv"), "--group-by", "preset"]) == 2
    assert "--group-by" in capsys.readouterr().err
    assert main(["crossval-table", str(tmp_path / "posts.csv")]) == 0
