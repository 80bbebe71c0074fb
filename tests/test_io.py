"""Case I/O: round trips keep geometry, names map to modalities, bad files raise InputError."""

from __future__ import annotations

import gzip
import tomllib
import zipfile

import nibabel as nib
import numpy as np
import pytest

from neuroinsight import io
from neuroinsight.errors import InputError
from tests.conftest import REPO, ras_copy, small_case


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Brats18_2013_11_1_t1ce.nii.gz", "t1ce"),
        ("BRATS18_X_T1CE.NII.GZ", "t1ce"),
        ("BraTS-GLI-00000-000-t1c.nii.gz", "t1ce"),
        ("BraTS-GLI-00000-000-t1n.nii.gz", "t1"),
        ("BraTS-GLI-00000-000-t2f.nii.gz", "flair"),
        ("BraTS-GLI-00000-000-t2w.nii.gz", "t2"),
        ("case_t1gd.nii", "t1ce"),
        ("case_flair.nii", "flair"),
        ("case_seg.nii.gz", "seg"),
        ("notes.txt", None),
    ],
)
def test_modality_names(name, expected):
    assert io.modality_of(name) == expected


def test_round_trip_keeps_geometry(phantom_dir, tmp_path):
    case = io.load_case(phantom_dir)
    assert case.source_orientation == "LPS"
    assert case.modalities == io.MODALITIES
    out = io.save_label_map(case.label, case, tmp_path / "seg.nii.gz")
    saved, original = nib.load(out), nib.load(next(phantom_dir.glob("*_seg.nii.gz")))
    assert saved.shape == original.shape
    np.testing.assert_allclose(saved.affine, original.affine)
    assert saved.get_data_dtype() == np.uint8
    assert nib.aff2axcodes(saved.affine) == ("L", "P", "S")
    np.testing.assert_array_equal(np.asarray(saved.dataobj), np.asarray(original.dataobj))


def test_ras_resaved_case_loads_to_same_canonical_arrays(phantom_dir, tmp_path):
    lps = io.load_case(phantom_dir)
    ras = io.load_case(ras_copy(phantom_dir, tmp_path / "ras"))
    assert ras.source_orientation == "RAS"
    np.testing.assert_array_equal(ras.label, lps.label)
    np.testing.assert_allclose(ras.images["flair"], lps.images["flair"])
    # Written back, each label map lies on its own input grid.
    out = io.save_label_map(ras.label, ras, tmp_path / "ras_seg.nii.gz")
    assert nib.aff2axcodes(nib.load(out).affine) == ("R", "A", "S")


def test_spacing_follows_header(tmp_path):
    case = small_case(spacing_mm=(0.9, 1.1, 3.0))
    io.save_case(case, tmp_path)
    loaded = io.load_case(tmp_path)
    np.testing.assert_allclose(loaded.spacing_mm, (0.9, 1.1, 3.0), rtol=1e-5)
    assert loaded.voxel_volume_ml == pytest.approx(0.9 * 1.1 * 3.0 / 1000, rel=1e-5)


def test_uploads_and_zip_load_the_same_case(phantom_dir, tmp_path):
    files = {p.name: p.read_bytes() for p in phantom_dir.glob("*.nii.gz")}
    from_upload = io.load_uploads(files, workdir=tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []  # the private temp folder is gone
    archive = tmp_path / "case.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"phantom_1/{name}", data)
    from_zip = io.load_case(archive)
    assert from_upload.case_id == from_zip.case_id == "phantom_1"
    np.testing.assert_array_equal(from_upload.label, from_zip.label)


def test_msd_four_d_image_and_labels(tmp_path):
    case = small_case()
    stack = np.stack([io.from_canonical(case.images[m], case.source_affine) for m in io.MSD_MODALITY_ORDER], axis=-1)
    nib.save(nib.Nifti1Image(stack, case.source_affine), tmp_path / "BRATS_001.nii.gz")
    brats = io.from_canonical(case.label, case.source_affine)
    msd = np.select([brats == 2, brats == 1, brats == 4], [1, 2, 3], 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(msd, case.source_affine), tmp_path / "BRATS_001_label.nii.gz")
    loaded = io.load_case(tmp_path / "BRATS_001.nii.gz", label_path=tmp_path / "BRATS_001_label.nii.gz")
    np.testing.assert_array_equal(loaded.label, case.label)
    np.testing.assert_allclose(loaded.images["t1ce"], case.images["t1ce"])


def test_brats2023_names_read_enhancing_tumor_from_label_3(tmp_path):
    case = small_case()
    names = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}
    for key, token in names.items():
        image = io.from_canonical(case.images[key], case.source_affine)
        nib.save(nib.Nifti1Image(image, case.source_affine), tmp_path / f"BraTS-GLI-00001-000-{token}.nii.gz")
    brats = io.from_canonical(case.label, case.source_affine)
    assert np.any(brats == 4)
    seg = tmp_path / "BraTS-GLI-00001-000-seg.nii.gz"
    nib.save(nib.Nifti1Image(np.where(brats == 4, 3, brats).astype(np.uint8), case.source_affine), seg)
    loaded = io.load_case(tmp_path)
    np.testing.assert_array_equal(loaded.label, case.label)  # 3 read as enhancing (BraTS 4)

    nib.save(nib.Nifti1Image(brats.astype(np.uint8), case.source_affine), seg)  # 4 is not a 2023 label
    with pytest.raises(InputError, match=r"label values \[4\] are not allowed"):
        io.load_case(tmp_path)


def _write(path, data: np.ndarray, affine=None):
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def test_truncated_gzip_is_refused(phantom_dir, tmp_path):
    files = {p.name: p.read_bytes() for p in phantom_dir.glob("*.nii.gz")}
    name = next(n for n in files if n.endswith("_flair.nii.gz"))
    files[name] = files[name][: len(files[name]) // 2]
    with pytest.raises(InputError, match="truncated or corrupt"):
        io.load_uploads(files)


def test_text_file_named_nifti_is_refused():
    with pytest.raises(InputError, match="not a NIfTI file"):
        io.load_uploads({"x_t1ce.nii.gz": b"hello, I am text", "x_flair.nii.gz": b"text too"})


def test_four_d_given_as_one_modality_is_refused(tmp_path):
    _write(tmp_path / "x_t1ce.nii.gz", np.random.rand(32, 32, 32, 3).astype(np.float32))
    _write(tmp_path / "x_flair.nii.gz", np.random.rand(32, 32, 32).astype(np.float32))
    with pytest.raises(InputError, match="expected a 3-D volume, got 4-D"):
        io.load_case(tmp_path)


def test_modalities_of_different_shapes_are_refused(tmp_path):
    _write(tmp_path / "x_t1ce.nii.gz", np.random.rand(32, 32, 32).astype(np.float32))
    _write(tmp_path / "x_flair.nii.gz", np.random.rand(32, 32, 30).astype(np.float32))
    with pytest.raises(InputError, match="differs from T1ce"):
        io.load_case(tmp_path)


def test_header_claiming_huge_shape_is_refused_before_reading(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((10000, 10000, 10000))
    header.set_data_dtype(np.float32)
    raw = header.binaryblock + b"\0" * 4 + b"\0" * 64
    (tmp_path / "x_t1ce.nii").write_bytes(raw)
    with pytest.raises(InputError, match="between 16 and 512"):
        io.check_nifti_file(tmp_path / "x_t1ce.nii")


def test_gzip_of_garbage_is_refused(tmp_path):
    path = tmp_path / "x_t1ce.nii.gz"
    path.write_bytes(gzip.compress(np.random.default_rng(0).bytes(4000)))
    with pytest.raises(InputError, match="not a NIfTI file"):
        io.check_nifti_file(path)


def _int16_case_folder(folder, case, slope: float = 1.0):
    """Write ``case`` as int16 files on its LPS source grid, optionally with a scl_slope."""
    folder.mkdir()
    stored = {}
    for key, volume in case.images.items():
        data = np.round(io.from_canonical(volume, case.source_affine) * 100).astype(np.int16)
        image = nib.Nifti1Image(data, case.source_affine)
        image.header.set_slope_inter(slope, 0.0)
        nib.save(image, folder / f"x_{key}.nii.gz")
        stored[key] = data
    return stored


def test_integer_intensities_are_kept_as_stored(tmp_path):
    case = small_case(seed=2)
    stored = _int16_case_folder(tmp_path / "int16", case)
    loaded = io.load_case(tmp_path / "int16")
    for key, data in stored.items():
        assert loaded.images[key].dtype == np.int16
        np.testing.assert_array_equal(loaded.images[key], io.to_canonical(data, case.source_affine))
        np.testing.assert_array_equal(io.from_canonical(loaded.images[key], case.source_affine), data)


def test_scaled_integers_become_float32(tmp_path):
    case = small_case(seed=2)
    _int16_case_folder(tmp_path / "scaled", case, slope=0.5)
    loaded = io.load_case(tmp_path / "scaled")
    expected = nib.load(tmp_path / "scaled" / "x_flair.nii.gz").get_fdata()
    assert loaded.images["flair"].dtype == np.float32
    np.testing.assert_allclose(io.from_canonical(loaded.images["flair"], case.source_affine), expected)


def test_multi_member_gzip_is_read_whole(phantom_dir, tmp_path):
    """Some tools write a .nii.gz as several gzip members; the reader must not stop after the first."""
    folder = tmp_path / "members"
    folder.mkdir()
    for path in phantom_dir.glob("*.nii.gz"):
        raw = gzip.decompress(path.read_bytes())
        (folder / path.name).write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    split, whole = io.load_case(folder), io.load_case(phantom_dir)
    np.testing.assert_array_equal(split.images["t1ce"], whole.images["t1ce"])
    np.testing.assert_array_equal(split.label, whole.label)


def test_the_app_upload_limit_is_the_file_check_limit():
    """The drop zones take io's limit; Streamlit's server refuses anything above its own
    ``server.maxUploadSize`` first, so the config must say the same."""
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 1024**2 == io.MAX_FILE_BYTES


def test_an_upload_over_the_size_limit_is_refused_in_the_units_of_the_limit(phantom_dir, tmp_path):
    files = {p.name: p.read_bytes() for p in phantom_dir.glob("*.nii.gz")}
    largest = max(len(data) for data in files.values())
    with pytest.raises(InputError, match=r"is over the \d+ MB limit per file"):
        io.load_uploads(files, workdir=tmp_path / "work", max_bytes=largest - 1)
    sizes = (512 * 1024**2, 1024**3, int(1.3 * 1024**3))
    assert [io.size_text(n) for n in sizes] == ["512 MB", "1 GB", "1.3 GB"]
    assert io.size_text(io.MAX_FILE_BYTES) == "1 GB"  # what the Upload page and the drop zone say
