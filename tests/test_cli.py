"""The CLI in-process: exit codes, one-line errors, outputs."""

from __future__ import annotations

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from neuroinsight.cli import main
from neuroinsight.model import load_model
from tests.conftest import tiny_model_args


def test_validate_prints_a_summary(phantom_dir, capsys):
    assert main(["validate", str(phantom_dir)]) == 0
    out = capsys.readouterr().out
    assert "phantom_1" in out and "LPS" in out and "spacing" in out and "labels" in out


def test_no_command_lists_the_commands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: python -m neuroinsight" in err and "segment" in err and "crossval-table" in err


def test_validate_bad_input_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "x_t1ce.nii.gz").write_text("not an image")
    (tmp_path / "x_flair.nii.gz").write_text("not an image")
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_phantom_command_writes_a_loadable_case(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "p"), "--shape", "48", "48", "32", "--tumor-radius", "8"]) == 0
    assert main(["validate", str(tmp_path / "p")]) == 0
    assert "phantom_0" in capsys.readouterr().out


def test_segment_and_evaluate_agree(phantom_data_dir, tiny_model_path, tmp_path, capsys):
    case_dir = phantom_data_dir / "ph0"
    out = tmp_path / "seg.nii.gz"
    code = main(
        [
            "--no-progress",
            "segment",
            str(case_dir),
            "--out",
            str(out),
            *tiny_model_args(tiny_model_path),
            "--uncertainty",
            str(tmp_path / "u.nii.gz"),
        ]
    )
    assert code == 0
    printed, errors = capsys.readouterr()
    assert "WT" in printed and "cm3" in printed and "flip TTA" in printed
    assert "accuracy to expect: not measured yet" in printed  # the tiny model's JSON records no measurement
    assert "warning" not in errors  # a skull-stripped phantom
    seg = nib.load(out)
    assert seg.shape == nib.load(case_dir / "ph0_t1ce.nii.gz").shape
    assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 4}
    assert (tmp_path / "u.nii.gz").exists()
    # TTA is on by default; --no-tta turns it off (and the output says which ran).
    args = ["--no-progress", "segment", str(case_dir), "--out", str(tmp_path / "s.nii.gz")]
    assert main([*args, *tiny_model_args(tiny_model_path)]) == 0
    assert "flip TTA" in capsys.readouterr().out
    assert main([*args, *tiny_model_args(tiny_model_path), "--no-tta"]) == 0
    assert "flip TTA" not in capsys.readouterr().out

    csv_path = tmp_path / "metrics.csv"
    code = main(
        [
            "--no-progress",
            "evaluate",
            str(phantom_data_dir),
            "--cases",
            "ph0",
            "ph1",
            "--out",
            str(csv_path),
            *tiny_model_args(tiny_model_path),
            "--labels-out",
            str(tmp_path / "pred"),
        ]
    )
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("Dice WT ") and " TC " in last and " ET " in last
    # The CSV agrees with metrics recomputed from the written label maps.
    from neuroinsight import io
    from neuroinsight.metrics import score_case

    rows = [line.split(",") for line in csv_path.read_text().strip().splitlines()]
    header, rows = rows[0], rows[1:]
    assert len(rows) == 2 * 3
    for case_id in ("ph0", "ph1"):
        case = io.load_case(phantom_data_dir / case_id)
        pred = io.to_canonical(
            np.asarray(nib.load(tmp_path / "pred" / f"{case_id}_pred.nii.gz").dataobj), case.source_affine
        )
        scores = score_case(pred, case.label, spacing_mm=case.spacing_mm)
        for row in rows:
            if row[0] == case_id:
                assert float(row[header.index("dice")]) == pytest.approx(scores[row[2]].dice, abs=1e-5)
                assert float(row[header.index("hd95_mm")]) == pytest.approx(scores[row[2]].hd95_mm, abs=1e-4)


def test_segment_warns_about_a_scan_that_is_not_skull_stripped(tiny_model_path, tmp_path, capsys):
    from neuroinsight import io
    from tests.conftest import small_case

    case = small_case(seed=2)
    noise = np.random.default_rng(0).uniform(1.0, 5.0, case.shape).astype(np.float32)
    for image in case.images.values():  # scanner noise where a skull-stripped scan has zeros
        image[image == 0] = noise[image == 0]
    folder = io.save_case(case, tmp_path / "head")
    out = tmp_path / "seg.nii.gz"
    assert main(["--no-progress", "segment", str(folder), "--out", str(out), *tiny_model_args(tiny_model_path)]) == 0
    assert "warning: This scan does not look skull-stripped" in capsys.readouterr().err
    assert out.exists()  # warned, not refused


def test_segment_warns_when_the_model_trained_on_this_patient(phantom_dir, tmp_path, capsys):
    from tests.conftest import save_tiny_model

    model = save_tiny_model(tmp_path / "seen.keras", info={"train_cases": ["phantom_1"]})
    out = tmp_path / "seg.nii.gz"
    assert main(["--no-progress", "segment", str(phantom_dir), "--out", str(out), *tiny_model_args(model)]) == 0
    captured = capsys.readouterr()
    assert "Dice WT" in captured.out
    assert "warning: phantom_1 was one of this model's training patients" in captured.err
    unseen = save_tiny_model(tmp_path / "unseen.keras", info={"train_cases": ["someone_else"]})
    assert main(["--no-progress", "segment", str(phantom_dir), "--out", str(out), *tiny_model_args(unseen)]) == 0
    assert "training patients" not in capsys.readouterr().err


def test_segment_recognises_a_training_patient_under_another_name(phantom_dir, tmp_path, capsys):
    """Later BraTS releases renamed earlier patients: identical FLAIR voxels still count as seen."""
    from neuroinsight import io
    from tests.conftest import save_tiny_model

    fingerprint = io.load_case(phantom_dir).fingerprint
    renamed = tmp_path / "BraTS20_Training_999"
    renamed.mkdir()
    for f in phantom_dir.iterdir():
        shutil.copy(f, renamed / f.name.replace("phantom_1", "BraTS20_Training_999"))
    model = save_tiny_model(tmp_path / "seen.keras", info={"train_fingerprints": {"phantom_1": fingerprint}})
    out = tmp_path / "seg.nii.gz"
    assert main(["--no-progress", "segment", str(renamed), "--out", str(out), *tiny_model_args(model)]) == 0
    assert (
        "warning: BraTS20_Training_999 has the same FLAIR voxels as phantom_1, which was one of this model's"
        " training patients" in capsys.readouterr().err
    )
    other = io.load_case(phantom_dir)
    other.images["flair"] = other.images["flair"] * 1.01  # a rescaled scan is another scan
    changed = io.save_case(other, tmp_path / "changed" / "BraTS20_Training_998")
    assert main(["--no-progress", "segment", str(changed), "--out", str(out), *tiny_model_args(model)]) == 0
    assert "training patients" not in capsys.readouterr().err


def test_report_command_writes_a_pdf(phantom_dir, tiny_model_path, tmp_path):
    out = tmp_path / "r.pdf"
    code = main(
        [
            "report",
            str(phantom_dir),
            "--out",
            str(out),
            *tiny_model_args(tiny_model_path),
            "--date",
            "2026-01-02T03:04:05",
            "--colour-blind-safe",
        ]
    )
    assert code == 0 and out.read_bytes().startswith(b"%PDF")


def test_unknown_command_is_an_argparse_error():
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_train_command_writes_model_settings_and_log(phantom_data_dir, tmp_path, capsys):
    out = tmp_path / "m.keras"
    args = [
        "--no-progress",
        "--home",
        str(tmp_path / "home"),
        "train",
        "--data",
        str(phantom_data_dir),
        "--out",
        str(out),
        "--preset",
        "seed",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--n-val",
        "1",
        "--n-test",
        "1",
    ]
    # The seed's slices 50..130 do not exist in these 40-slice phantoms: a clear error, not a traceback.
    assert main(args) == 2
    assert "No training slices" in capsys.readouterr().err
    args[args.index("seed")] = "improved"
    # Three 2x2 poolings need a side divisible by 8: said before any data is read.
    assert main([*args, "--image-size", "100"]) == 2
    assert "image size must be a multiple of 8" in capsys.readouterr().err
    assert main([*args, "--extra-planes", "axial"]) == 2  # the network's own plane is no extra
    assert "extra planes must be other planes than 'axial'" in capsys.readouterr().err
    wide = ["--image-size", "64", "--filters", "8", "16", "32", "--bottleneck", "64"]
    assert main([*args, *wide, "--deep-supervision", "--extra-planes", "coronal"]) == 0
    printed = capsys.readouterr().out
    assert "train " in printed and "test " in printed and "trained 1 epochs" in printed
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["train"]["preprocess"]["image_size"] == 64 and info["model"]["image_size"] == 64
    assert info["model"]["filters"] == [8, 16, 32] and info["model"]["bottleneck"] == 64
    assert info["preset"] == "improved" and info["train"]["batch_size"] == 2  # the seed's batch size
    assert info["train"]["loss"] == "ce_dice" and info["train"]["preprocess"]["slice_range"] is None
    assert info["train"]["extra_planes"] == ["coronal"] and "plane" not in info["train"]["preprocess"]
    assert len(info["split"]["test"]) == 1 and out.with_suffix(".log.csv").exists()
    assert info["train"]["deep_supervision"] is True
    # --precision auto (the default) trains in, prints and records one concrete policy: this machine's fastest.
    from neuroinsight.training import fast_training_precision

    assert info["train"]["precision"] == fast_training_precision()
    assert f"precision auto: {fast_training_precision()}" in printed
    assert load_model(out).output_shape == (None, 64, 64, 4)  # the heads stay out of the saved network


def test_evaluate_records_only_patients_the_model_never_trained_on(phantom_data_dir, tiny_model_path, tmp_path, capsys):
    import json

    model = tmp_path / "m.keras"
    shutil.copy(tiny_model_path, model)
    info = json.loads(tiny_model_path.with_suffix(".json").read_text())
    info["split"] = {"train": ["ph0"], "val": ["ph2"], "test": ["ph1"]}
    # ph0's score when its recipe's cross-validation held it out (the shipped models record all 12 patients').
    info["crossval"] = {"per_patient": {"ph0": {"WT": 0.5, "TC": 0.25, "ET": 0.125}}}
    model.with_suffix(".json").write_text(json.dumps(info))
    plain = ["--no-progress", "evaluate", str(phantom_data_dir), "--no-tta", "--model", str(model)]
    plain += ["--precision", "float32"]
    common = [*plain, "--record", "--cases"]
    assert main([*common, "ph0", "ph1", "ph2"]) == 2
    assert "trained or selected on ph0, ph2" in capsys.readouterr().err
    assert "test_metrics" not in json.loads(model.with_suffix(".json").read_text())
    assert main([*common, "ph1"]) == 0
    assert json.loads(model.with_suffix(".json").read_text())["test_metrics"]["cases"] == ["ph1"]
    assert "note:" not in capsys.readouterr().out  # a test patient alone: nothing to warn about

    # Without --record, the model's own patients are scored but flagged, in the CSV and on screen.
    out = tmp_path / "metrics.csv"
    assert main([*plain, "--out", str(out), "--cases", "ph0", "ph1", "ph2"]) == 0
    printed = capsys.readouterr().out
    assert "note: 2 of these cases (ph0, ph2) were among the model's own" in printed
    rows = list(csv.DictReader(out.read_text().splitlines()))
    seen = {row["case"]: row["seen_in_training"] for row in rows}
    assert seen == {"ph0": "training", "ph1": "no", "ph2": "validation"}
    held_out = {(row["case"], row["region"]): row["held_out_dice"] for row in rows}
    assert held_out[("ph0", "TC")] == "0.25" and held_out[("ph1", "TC")] == held_out[("ph2", "TC")] == ""
    ph0 = {row["region"]: float(row["dice"]) for row in rows if row["case"] == "ph0"}
    assert (
        f"On the 1 of them with a recorded cross-validation score the model reached mean Dice WT {ph0['WT']:.2f}, "
        f"TC {ph0['TC']:.2f}, ET {ph0['ET']:.2f}; held out, the same patients scored WT 0.50, TC 0.25, ET 0.12."
    ) in printed


def test_parser_choices_agree_with_the_package():
    from neuroinsight import cli, crossval
    from neuroinsight.augmentation import PRESETS
    from neuroinsight.cli import AUGMENT_CHOICES, DECODE_CHOICES, LOSS_CHOICES, NORM_CHOICES, PLANE_CHOICES
    from neuroinsight.model import NORMS
    from neuroinsight.preprocessing import DECODINGS, PLANE_AXES
    from neuroinsight.training import LOSSES

    assert LOSS_CHOICES == LOSSES
    assert NORM_CHOICES == NORMS
    assert tuple(PRESETS) == AUGMENT_CHOICES
    assert DECODE_CHOICES == DECODINGS
    assert tuple(PLANE_AXES) == PLANE_CHOICES
    assert cli.CROSSVAL_EPOCHS == crossval.CROSSVAL_EPOCHS
    assert cli.CROSSVAL_BATCH_SIZE == crossval.CROSSVAL_BATCH_SIZE


def test_segment_ensemble_runs_both_shipped_models_and_says_so(phantom_dir, tiny_models_dir, tmp_path, capsys):
    models = ["--models-dir", str(tiny_models_dir), "--precision", "float32"]
    base = ["--no-progress", "segment", str(phantom_dir), *models]
    single, both = tmp_path / "single.nii.gz", tmp_path / "both.nii.gz"
    assert main([*base, "--out", str(single), "--probabilities", str(tmp_path / "p1.nii.gz")]) == 0
    assert "model attention_unet_4mod.keras (" in capsys.readouterr().out
    assert main([*base, "--out", str(both), "--ensemble", "--probabilities", str(tmp_path / "p2.nii.gz")]) == 0
    assert "model attention_unet_4mod.keras + attention_unet.keras (t1+t1ce+t2+flair)" in capsys.readouterr().out
    p1, p2 = (np.asarray(nib.load(tmp_path / f"p{i}.nii.gz").dataobj) for i in (1, 2))
    assert np.abs(p1 - p2).max() > 0.01  # the second model changed the probabilities
    code = main([*base, "--out", str(both), "--ensemble", *tiny_model_args(tiny_models_dir / "attention_unet.keras")])
    assert code == 2 and "--ensemble" in capsys.readouterr().err
    two_only = tmp_path / "two_only"
    two_only.mkdir()
    for path in phantom_dir.glob("*.nii.gz"):
        if "_t1." not in path.name and "_t2." not in path.name:
            shutil.copy(path, two_only / path.name)
    assert main(["--no-progress", "segment", str(two_only), *models, "--out", str(both), "--ensemble"]) == 0
    printed, errors = capsys.readouterr()
    assert "model attention_unet.keras (t1ce+flair)" in printed and "ran attention_unet.keras alone" in errors
