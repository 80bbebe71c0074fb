"""Hostile and broken inputs, each built on demand into a folder of files (or one archive).

Every entry says what a user would expect: ``error`` (a message containing ``expect``)
or ``ok`` (the case loads and can be segmented). The same catalogue drives the CLI
tests and the app-upload tests, and ``README.md`` beside this file tabulates it.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from neuroinsight import io, phantom

SHAPE = (48, 48, 32)


@dataclass(frozen=True)
class Hostile:
    """One input: how to build it, and what should happen."""

    name: str
    build: Callable[[Path], list[Path]]
    outcome: str  # "error" or "ok"
    expect: str = ""  # regular expression the error message must match
    upload: bool = True  # also try through the app's uploader


def _small(seed: int = 0, **kwargs) -> io.Case:
    kwargs.setdefault("tumor_radius_mm", 8.0)
    return phantom.make_case(seed=seed, shape=SHAPE, **kwargs)


def _folder(root: Path, case: io.Case | None = None, *, prefix: str = "x") -> dict[str, Path]:
    """Write a valid case as <prefix>_<modality>.nii.gz; return modality -> path."""
    case = case or _small()
    folder = root / "case"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, volume in case.images.items():
        paths[key] = io.save_volume(volume, case, folder / f"{prefix}_{key}.nii.gz")
    if case.label is not None:
        paths["seg"] = io.save_label_map(case.label, case, folder / f"{prefix}_seg.nii.gz")
    return paths


def _replace(modality: str, writer: Callable[[Path], None]) -> Callable[[Path], list[Path]]:
    def build(root: Path) -> list[Path]:
        paths = _folder(root)
        writer(paths[modality])
        return list(paths.values())

    return build


def _nifti(data: np.ndarray, affine: np.ndarray | None = None) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)

    return write


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _volume(fill: Callable[[np.ndarray], None], dtype=np.float32) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        image = nib.load(path)
        data = np.asarray(image.dataobj, dtype=np.float64)
        fill(data)
        nib.save(nib.Nifti1Image(data.astype(dtype), image.affine, image.header), path)

    return write


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _huge_header(path: Path) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((10000, 10000, 10000))
    header.set_data_dtype(np.float32)
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 1024))


def _dicom_bytes() -> bytes:
    return b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + b"\0" * 200


def _drop(*modalities: str) -> Callable[[Path], list[Path]]:
    def build(root: Path) -> list[Path]:
        paths = _folder(root)
        for modality in modalities:
            paths.pop(modality).unlink()
        return list(paths.values())

    return build


def _twice(root: Path) -> list[Path]:
    paths = _folder(root)
    copy = paths["flair"].with_name("y_flair.nii.gz")
    copy.write_bytes(paths["flair"].read_bytes())
    return [*paths.values(), copy]


def _label_values(value: int) -> Callable[[Path], list[Path]]:
    return _replace("seg", _volume(lambda d: d.__setitem__((slice(0, 3),) * 3, value), np.uint8))


def _affine_shift(root: Path) -> list[Path]:
    paths = _folder(root)
    image = nib.load(paths["flair"])
    moved = image.affine.copy()
    moved[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), moved), paths["flair"])
    return list(paths.values())


def _zip_of(entries: dict[str, bytes], root: Path, name: str = "case.zip") -> Path:
    path = root / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry, data in entries.items():
            zf.writestr(entry, data)
    return path


def _zip_with(extra: dict[str, bytes]) -> Callable[[Path], list[Path]]:
    def build(root: Path) -> list[Path]:
        paths = _folder(root)
        entries = {f"case/{p.name}": p.read_bytes() for p in paths.values()}
        return [_zip_of({**entries, **extra}, root)]

    return build


def _zip_bomb(root: Path) -> list[Path]:
    path = root / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("case/x_flair.nii", b"\0" * (96 * 1024 * 1024))
    return [path]


def _nested_zip(root: Path) -> list[Path]:
    inner = _zip_with({})(root / "inner")
    return [_zip_of({"inner.zip": inner[0].read_bytes()}, root, "outer.zip")]


def _case_variant(**kwargs) -> Callable[[Path], list[Path]]:
    def build(root: Path) -> list[Path]:
        return list(_folder(root, _small(0, **kwargs)).values())

    return build


def _spacing(root: Path) -> list[Path]:
    return list(_folder(root, _small(0, spacing_mm=(0.9, 1.2, 3.0), tumor_radius_mm=10.0)).values())


def _reoriented(root: Path) -> list[Path]:
    paths = _folder(root)
    for path in paths.values():
        nib.save(nib.as_closest_canonical(nib.load(path)), path)
    return list(paths.values())


def _retyped(dtype) -> Callable[[Path], list[Path]]:
    def build(root: Path) -> list[Path]:
        paths = _folder(root)
        image = nib.load(paths["t1ce"])
        data = np.asarray(image.dataobj, dtype=np.float64)
        if np.dtype(dtype).kind in "iu":
            data = data / data.max() * (np.iinfo(dtype).max - 1)
        nib.save(nib.Nifti1Image(data.astype(dtype), image.affine), paths["t1ce"])
        return list(paths.values())

    return build


def _msd(root: Path) -> list[Path]:
    case = _small()
    stack = np.stack([io.from_canonical(case.images[m], case.source_affine) for m in io.MSD_MODALITY_ORDER], -1)
    path = root / "BRATS_001.nii.gz"
    nib.save(nib.Nifti1Image(stack.astype(np.float32), case.source_affine), path)
    return [path]


def _unicode_names(root: Path) -> list[Path]:
    paths = _folder(root, prefix="Patiënt ñame 01")
    return list(paths.values())


def _oversized(root: Path) -> list[Path]:
    paths = _folder(root)
    with paths["flair"].open("r+b") as fh:  # sparse: large on paper, no disk used
        fh.truncate(io.MAX_FILE_BYTES + 1)
    return list(paths.values())


def _dicom_folder(root: Path) -> list[Path]:
    folder = root / "dicom"
    folder.mkdir()
    for i in range(3):
        (folder / f"IM{i:04d}").write_bytes(_dicom_bytes())
    return [folder]


def _other_extension(root: Path) -> list[Path]:
    paths = _folder(root)
    png = paths["flair"].with_name("x_flair.png")
    paths["flair"].rename(png)
    paths["flair"] = png
    return list(paths.values())


_rng = np.random.default_rng(0)
CATALOGUE: list[Hostile] = [
    Hostile("empty file", _replace("flair", _bytes(b"")), "error", "empty"),
    Hostile(
        "text renamed .nii.gz", _replace("flair", _bytes(b"patient notes, not an image\n" * 20)), "error", "not a NIfTI"
    ),
    Hostile("truncated gzip", _replace("flair", _truncate), "error", "truncated or corrupt"),
    Hostile(
        "valid gzip of garbage", _replace("flair", _bytes(gzip.compress(_rng.bytes(5000)))), "error", "not a NIfTI"
    ),
    Hostile("header claiming 10000^3 voxels", _replace("flair", _huge_header), "error", "between 16 and 512"),
    Hostile("2-D image", _replace("flair", _nifti(np.ones((48, 48), np.float32))), "error", "got 2-D"),
    Hostile(
        "4-D (3 volumes) given as one modality",
        _replace("flair", _nifti(_rng.random((*SHAPE, 3)).astype(np.float32))),
        "error",
        "got 4-D",
    ),
    Hostile("5-D image", _replace("flair", _nifti(_rng.random((*SHAPE, 2, 2)).astype(np.float32))), "error", "got 5-D"),
    Hostile(
        "modalities of different shapes",
        _replace("flair", _nifti(_rng.random((48, 48, 30)).astype(np.float32))),
        "error",
        "differs from T1ce",
    ),
    Hostile("affines disagree beyond tolerance", _affine_shift, "error", "affine"),
    Hostile(
        "NaN voxels", _replace("flair", _volume(lambda d: d.__setitem__((5, 5, 5), np.nan))), "error", "NaN or infinite"
    ),
    Hostile(
        "Inf voxels", _replace("flair", _volume(lambda d: d.__setitem__((5, 5, 5), np.inf))), "error", "NaN or infinite"
    ),
    Hostile("constant volume", _replace("flair", _volume(lambda d: d.fill(7.0))), "error", "every voxel has the value"),
    Hostile("all-zero volume", _replace("flair", _volume(lambda d: d.fill(0.0))), "error", "every voxel has the value"),
    Hostile(
        "complex data type",
        _replace("flair", _nifti(_rng.random(SHAPE).astype(np.complex64))),
        "error",
        "not supported",
    ),
    Hostile("missing FLAIR", _drop("flair"), "error", "Missing FLAIR"),
    # Without T1ce alone the case is accepted (T1 + T2 + FLAIR, whole tumor only: test_no_contrast.py).
    Hostile("missing T1ce and T2", _drop("t1ce", "t2"), "error", "Missing T1CE"),
    Hostile("a modality given twice", _twice, "error", "given twice"),
    Hostile("label value 3", _label_values(3), "error", r"label values \[3\]"),
    Hostile("label value 5", _label_values(5), "error", r"label values \[5\]"),
    Hostile("label value 255", _label_values(255), "error", r"label values \[255\]"),
    Hostile(
        "fractional label values",
        _replace("seg", _volume(lambda d: d.__setitem__((1, 1, 1), 1.5))),
        "error",
        "whole numbers",
    ),
    Hostile(
        "ground truth of another shape",
        _replace("seg", _nifti(np.zeros((48, 48, 30), np.uint8))),
        "error",
        "differs from T1ce",
    ),
    Hostile("zip with a ../ entry", _zip_with({"../evil_flair.nii.gz": b"x"}), "error", "outside the archive"),
    Hostile("zip with an absolute path", _zip_with({"/tmp/evil_flair.nii.gz": b"x"}), "error", "outside the archive"),
    Hostile("zip bomb (expansion ratio)", _zip_bomb, "error", "zip bomb"),
    Hostile("nested zip", _nested_zip, "error", "another zip"),
    Hostile("DICOM file named .dcm", _replace("flair", _bytes(_dicom_bytes())), "error", "DICOM"),
    # The uploader itself only accepts .nii, .gz and .zip, so this one goes through the CLI only.
    Hostile(
        "file that is not .nii/.nii.gz",
        _other_extension,
        "error",
        r"not a \.nii or \.nii\.gz|Missing FLAIR",
        upload=False,
    ),
    Hostile("file over the size limit", _oversized, "error", "limit", upload=False),
    Hostile("DICOM folder", _dicom_folder, "error", "DICOM", upload=False),
    Hostile("int8 data", _retyped(np.int8), "ok"),
    Hostile("uint8 data", _retyped(np.uint8), "ok"),
    Hostile("float64 data", _retyped(np.float64), "ok"),
    Hostile("anisotropic non-1 mm spacing", _spacing, "ok"),
    Hostile("non-canonical (RAS instead of LPS) orientation", _reoriented, "ok"),
    Hostile("4-D Decathlon image with four volumes", _msd, "ok"),
    Hostile("unicode and spaces in file names", _unicode_names, "ok"),
    Hostile("a case with no tumor", _case_variant(tumor_radius_mm=0.0), "ok"),
    Hostile("a tiny tumor", _case_variant(tumor_radius_mm=2.5), "ok"),
]


def cli_target(paths: list[Path]) -> Path:
    """What the CLI is given: the one file/folder/archive, or the folder holding the files."""
    return paths[0] if len(paths) == 1 else paths[0].parent


def upload_payload(paths: list[Path]) -> list[tuple[str, bytes]]:
    """What the app's uploader receives: (file name, bytes) of every file."""
    return [(p.name, p.read_bytes()) for p in paths]
