"""Every hostile input through the CLI (validate, segment) and through the app's uploader."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from neuroinsight import io
from neuroinsight.cli import main
from tests.conftest import REPO, tiny_model_args
from tests.reliability.catalogue import CATALOGUE, Hostile, cli_target, upload_payload

ERRORS = [h for h in CATALOGUE if h.outcome == "error"]
ACCEPTED = [h for h in CATALOGUE if h.outcome == "ok"]


def test_the_catalogue_is_large_enough():
    assert len(ERRORS) >= 30 - len(ACCEPTED) and len(CATALOGUE) >= 30


@pytest.mark.parametrize("hostile", ERRORS, ids=lambda h: h.name)
@pytest.mark.parametrize("command", ["validate", "segment"])
def test_cli_refuses_with_one_line(hostile: Hostile, command, tmp_path, tiny_model_path, capsys):
    target = cli_target(hostile.build(tmp_path))
    args = [command, str(target)]
    if command == "segment":
        args += ["--out", str(tmp_path / "seg.nii.gz"), *tiny_model_args(tiny_model_path)]
    assert main(["--no-progress", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert re.search(hostile.expect, captured.err), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "seg.nii.gz").exists()


@pytest.mark.parametrize("hostile", ACCEPTED, ids=lambda h: h.name)
def test_cli_accepts_and_writes_on_the_input_grid(hostile: Hostile, tmp_path, tiny_model_path, capsys):
    target = cli_target(hostile.build(tmp_path))
    out = tmp_path / "seg.nii.gz"
    assert main(["validate", str(target)]) == 0
    code = main(
        [
            "--no-progress",
            "segment",
            str(target),
            "--out",
            str(out),
            *tiny_model_args(tiny_model_path),
        ]
    )
    assert code == 0, capsys.readouterr().err
    source = next(p for p in (target.glob("*t1ce*") if target.is_dir() else [target]))
    reference = nib.load(source)
    written = nib.load(out)
    assert written.shape == reference.shape[:3]
    np.testing.assert_allclose(written.affine, reference.affine, atol=1e-4)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 4}


@pytest.fixture(scope="module")
def upload_page(tmp_path_factory) -> AppTest:
    """One app session reused for every upload, proving the page keeps working after each error."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180).switch_page("pages/1_Upload.py").run()
    return at


def _upload(at: AppTest, files) -> AppTest:
    at.file_uploader[0].set_value([(name, data, "application/octet-stream") for name, data in files])
    next(b for b in at.button if b.label == "Load and segment").click().run()
    return at


@pytest.mark.parametrize("hostile", [h for h in ERRORS if h.upload], ids=lambda h: h.name)
def test_app_upload_shows_the_error_and_keeps_working(hostile: Hostile, upload_page, tmp_path):
    at = _upload(upload_page, upload_payload(hostile.build(tmp_path)))
    assert not at.exception
    messages = [e.value for e in at.error]
    assert any(re.search(hostile.expect, m) for m in messages), messages
    assert "Traceback" not in " ".join(messages)


def test_the_next_upload_still_works(upload_page, phantom_dir):
    at = _upload(upload_page, [(p.name, p.read_bytes()) for p in sorted(phantom_dir.glob("*.nii.gz"))])
    assert not at.exception and not at.error
    assert at.session_state["result"].case.case_id == "phantom_1"


def test_upload_size_cap_is_checked_before_writing(tmp_path):
    from neuroinsight.errors import InputError

    with pytest.raises(InputError, match="limit"):
        io.load_uploads({"x_flair.nii.gz": b"\0" * 2048}, max_bytes=1024, workdir=tmp_path)
    assert not any(tmp_path.iterdir())
