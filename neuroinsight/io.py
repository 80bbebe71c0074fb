"""Read and write BraTS-style cases as NIfTI, validating everything first.

Conventions (the rest of the package relies on them):

* **Orientation.** Every array in a :class:`Case` is in the closest canonical
  orientation (RAS+, ``nib.as_closest_canonical``), axes ``(x, y, z)``; axial
  slices are ``array[:, :, k]``. The source affine and header are kept so a
  label map can be written back on the input's own grid
  (:func:`save_label_map`).
* **Labels.** Ground truth uses the raw BraTS convention ``{0, 1, 2, 4}``
  (background, NCR/NET, edema, enhancing tumor). Decathlon (MSD) label maps
  ``{0, 1, 2, 3}`` (edema, non-enhancing, enhancing) and BraTS 2023 ones
  ``{0, 1, 2, 3}`` (enhancing tumor as 3; recognised by the 2023 file names
  ``t1n/t1c/t2w/t2f``) are converted at this boundary and nowhere else.
* **Modalities.** ``MODALITIES`` fixes the order ``t1, t1ce, t2, flair``;
  T1ce and FLAIR are required, T1 and T2 optional. Without contrast (no T1ce),
  T1, T2 and FLAIR together are accepted: a model trained with modality dropout
  outlines the whole tumor from them (:func:`missing_modalities`).

Validation happens before voxel data is read: file size, content type by
magic bytes, header shape and data type. Every failure raises
:class:`~neuroinsight.errors.InputError` with what is wrong and what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from io import BytesIO
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip, isal_zlib
from numpy.typing import NDArray

from neuroinsight.errors import InputError

MODALITIES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
REQUIRED_MODALITIES: tuple[str, ...] = ("t1ce", "flair")
#: A scan without contrast agent has no T1ce; these three then stand in (whole tumor only).
NO_CONTRAST_MODALITIES: tuple[str, ...] = ("t1", "t2", "flair")
BRATS_LABELS: tuple[int, ...] = (0, 1, 2, 4)
#: Medical Segmentation Decathlon Task01 order of the 4-D image and its labels.
MSD_MODALITY_ORDER: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
MSD_TO_BRATS_LABEL: dict[int, int] = {0: 0, 1: 2, 2: 1, 3: 4}
#: BraTS 2023 (BraTS-GLI) moved enhancing tumor from 4 to 3.
BRATS2023_TO_BRATS_LABEL: dict[int, int] = {0: 0, 1: 1, 2: 2, 3: 4}
#: Modality tokens only the BraTS 2023 naming uses: their label maps follow its convention.
BRATS2023_TOKENS: frozenset[str] = frozenset({"t1n", "t1c", "t2w", "t2f"})

#: The app's upload limit (``server.maxUploadSize``) too, so both refuse the same files.
MAX_FILE_BYTES = 1024**3
MIN_DIM, MAX_DIM = 16, 512
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3
#: A member larger than this that compressed better than MAX_ZIP_RATIO is a zip bomb.
ZIP_RATIO_CHECK_BYTES = 64 * 1024**2
MAX_ZIP_RATIO = 200
AFFINE_TOLERANCE_MM = 0.05


def size_text(n_bytes: int) -> str:
    """A file size as people read it: ``"1 GB"``, ``"1.3 GB"``, ``"512 MB"`` (binary units, as the limits are set)."""
    if n_bytes >= 1024**3:
        return f"{n_bytes / 1024**3:.1f}".removesuffix(".0") + " GB"
    return f"{n_bytes / 1024**2:.0f} MB"


# Accepted file-name tokens per modality, lower case (BraTS 2018-2021, 2023, common variants).
_MODALITY_TOKENS: dict[str, tuple[str, ...]] = {
    "t1": ("t1", "t1n", "t1w", "t1native"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1wce", "t1post", "t1contrast"),
    "t2": ("t2", "t2w"),
    "flair": ("flair", "t2f", "t2flair", "fla"),
    "seg": ("seg", "label", "labels", "mask", "gt", "segmentation", "truth"),
}
_TOKEN_TO_KEY = {tok: key for key, toks in _MODALITY_TOKENS.items() for tok in toks}
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_INFLATE_PIECE = 1 << 20
_DICOM_SUFFIXES = (".dcm", ".ima")


@dataclass
class Case:
    """One patient: modality volumes in canonical orientation plus source geometry.

    Attributes:
        case_id: Identifier, e.g. ``Brats18_2013_11_1``.
        images: Modality name -> array ``(x, y, z)`` in RAS orientation: integer intensities as
            stored in the file, otherwise float32.
        spacing_mm: Voxel size along ``(x, y, z)`` of the canonical arrays, in mm.
        source_affine: The input's own voxel-to-world affine (4x4).
        source_header: The input's NIfTI header, to write results back.
        label: Ground truth, uint8 ``(x, y, z)`` with values in ``{0, 1, 2, 4}``, or None.
        source_files: Names of the files the case was read from (for display).
    """

    case_id: str
    images: dict[str, NDArray]
    spacing_mm: tuple[float, float, float]
    source_affine: NDArray[np.float64]
    source_header: nib.Nifti1Header
    label: NDArray[np.uint8] | None = None
    source_files: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Canonical array shape ``(x, y, z)``."""
        return tuple(next(iter(self.images.values())).shape)  # type: ignore[return-value]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present, in ``MODALITIES`` order."""
        return tuple(m for m in MODALITIES if m in self.images)

    @property
    def has_contrast(self) -> bool:
        """Whether the case has a contrast-enhanced T1: enhancing tumor, core and grade need it."""
        return "t1ce" in self.images

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in cm3 (= ml)."""
        return float(np.prod(self.spacing_mm)) / 1000.0

    @property
    def source_orientation(self) -> str:
        """Axis codes of the input, e.g. ``LPS``."""
        return "".join(nib.aff2axcodes(self.source_affine))

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the FLAIR voxels (canonical orientation, as float32), ``""`` without FLAIR.

        Public BraTS releases re-issue earlier patients under new names (BraTS 2019-2021
        include the 2018 cases), so a name says little about whether a model has seen a
        scan; identical voxels do. FLAIR because every model needs it. A rescaled or
        resampled copy gets another fingerprint.
        """
        flair = self.images.get("flair")
        if flair is None:
            return ""
        digest = hashlib.sha256(str(flair.shape).encode())
        digest.update(np.ascontiguousarray(flair, dtype="<f4").data)
        return digest.hexdigest()


# --------------------------------------------------------------------------- orientation


def _orientation_transform(affine: NDArray[np.float64], *, to_canonical: bool) -> NDArray:
    source = nib.orientations.io_orientation(affine)
    ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
    if to_canonical:
        return nib.orientations.ornt_transform(source, ras)
    return nib.orientations.ornt_transform(ras, source)


def to_canonical(array: NDArray, source_affine: NDArray[np.float64]) -> NDArray:
    """Reorient a source-grid array ``(i, j, k, ...)`` to RAS (a view when possible)."""
    return nib.orientations.apply_orientation(array, _orientation_transform(source_affine, to_canonical=True))


def from_canonical(array: NDArray, source_affine: NDArray[np.float64]) -> NDArray:
    """Inverse of :func:`to_canonical`: bring a RAS array back to the source grid."""
    return nib.orientations.apply_orientation(array, _orientation_transform(source_affine, to_canonical=False))


# --------------------------------------------------------------------------- file checks


def modality_of(filename: str) -> str | None:
    """Return ``t1``/``t1ce``/``t2``/``flair``/``seg`` for a file name, or None.

    The last token of the name before ``.nii(.gz)`` decides, case-insensitively:
    ``Brats18_x_t1ce.nii.gz``, ``BraTS-GLI-00000-000-t2f.nii.gz`` and ``FLAIR.nii`` all match.
    """
    return _TOKEN_TO_KEY.get(_last_token(Path(filename).name))


def _strip_nifti_suffix(name: str) -> str:
    low = name.lower()
    for suffix in _NIFTI_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _last_token(name: str) -> str:
    tokens = [t for t in re.split(r"[_\-.\s]+", _strip_nifti_suffix(name).lower()) if t]
    return tokens[-1] if tokens else ""


def _is_dicom(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def _read_head(path: Path, n: int = 544) -> bytes:
    """First ``n`` bytes of the (decompressed) file, or InputError if unreadable."""
    with path.open("rb") as fh:
        raw = fh.read(n)
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(
            f"{path.name}: the gzip stream is corrupt or truncated ({err}). "
            "Re-export or re-download the file and upload it again."
        ) from err


def check_nifti_file(path: Path, *, max_bytes: int = MAX_FILE_BYTES, ndim: Iterable[int] = (3,)) -> nib.Nifti1Image:
    """Validate a NIfTI file from its size, magic bytes and header, without reading voxels.

    Args:
        path: File to check.
        max_bytes: Largest file size accepted on disk.
        ndim: Accepted numbers of dimensions (3 for a modality, 4 for a Decathlon image).

    Returns:
        The lazily loaded image (voxel data not read yet).

    Raises:
        InputError: Empty, too large, not NIfTI, DICOM, a bad shape or data type.
    """
    name = path.name
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{name}: the file is empty. Upload the NIfTI volume (.nii or .nii.gz) itself.")
    if size > max_bytes:
        raise InputError(
            f"{name}: {size_text(size)} is over the {size_text(max_bytes)} limit per file. "
            "Crop or compress the volume (.nii.gz) and try again."
        )
    head = _read_head(path)
    if _is_dicom(head) or name.lower().endswith(_DICOM_SUFFIXES):
        raise InputError(
            f"{name}: this is a DICOM file; NeuroInsight reads NIfTI. Convert the series to NIfTI "
            "first (for example `dcm2niix -z y <dicom folder>`), then upload the .nii.gz files."
        )
    is_nifti1 = len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00")
    is_nifti2 = len(head) >= 8 and head[4:8] in (b"n+2\x00", b"ni2\x00")
    if not (is_nifti1 or is_nifti2):
        raise InputError(
            f"{name}: not a NIfTI file (no NIfTI header found). Upload .nii or .nii.gz volumes, "
            "one per modality, or a .zip of a BraTS case folder."
        )
    try:
        image = nib.load(str(path), mmap=False)  # intensities are kept as read: never tied to a file that may change
    except Exception as err:  # nibabel raises many types for a broken header
        raise InputError(f"{name}: the NIfTI header cannot be read ({err}). Re-export the file.") from err
    shape = tuple(int(s) for s in image.header.get_data_shape())
    accepted = tuple(ndim)
    # Trailing singleton dimensions (x, y, z, 1) are common in exported volumes.
    while len(shape) > 3 and shape[-1] == 1 and len(shape) not in accepted:
        shape = shape[:-1]
    if len(shape) not in accepted:
        want = " or ".join(f"{d}-D" for d in accepted)
        hint = (
            " A 4-D file holds several volumes: upload it as a Decathlon 4-D image, or split it."
            if len(shape) == 4
            else " Upload the whole 3-D scan of each modality (one volume per file), not a single slice or a series."
        )
        raise InputError(f"{name}: expected a {want} volume, got {len(shape)}-D with shape {shape}.{hint}")
    spatial = shape[:3]
    if any(s < MIN_DIM or s > MAX_DIM for s in spatial):
        raise InputError(
            f"{name}: each spatial dimension must be between {MIN_DIM} and {MAX_DIM} voxels, "
            f"got {spatial}. Resample or crop the volume."
        )
    dtype = image.header.get_data_dtype()
    if dtype.kind == "c" or dtype.names is not None or dtype.kind not in "iuf":
        raise InputError(f"{name}: voxel type {dtype} is not supported; use integer or floating-point intensities.")
    zooms = image.header.get_zooms()[:3]
    if not all(np.isfinite(z) and z > 0 for z in zooms):
        raise InputError(f"{name}: invalid voxel spacing {zooms} in the header. Fix the header (pixdim).")
    if not np.all(np.isfinite(image.affine)):
        raise InputError(f"{name}: the header's affine has non-finite values. Fix the header (qform/sform).")
    return image


def _read_voxels(image: nib.Nifti1Image, name: str) -> NDArray:
    """Voxel data as stored (scaled if the header says so), or InputError if unreadable."""
    filename = image.get_filename()
    try:
        if filename and filename.lower().endswith(".gz"):
            data = _inflated_voxels(Path(filename), image)
        else:
            data = np.asarray(image.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, isal_zlib.error) as err:
        raise InputError(
            f"{name}: the voxel data is truncated or corrupt ({err}). Re-export the file and upload it again."
        ) from err
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return data


def _inflated_voxels(path: Path, image: nib.Nifti1Image) -> NDArray:
    """Voxels of a ``.nii.gz``, inflated with ISA-L (about twice as fast as zlib here).

    Inflation stops at the bytes the header promises, so a stream that would expand to
    more is never held in memory. It goes in 1 MB pieces into one NumPy buffer, which
    NumPy backs with huge pages: ~15 % faster than one ``bytes`` result, and writable.
    """
    proxy = image.dataobj  # where the voxels start (after any extensions), their type and scaling
    needed = proxy.offset + int(np.prod(proxy.shape)) * proxy.dtype.itemsize
    raw = np.empty(needed, dtype=np.uint8)
    view = memoryview(raw)
    inflater = isal_zlib.decompressobj(wbits=31)  # 31: gzip container
    pending, filled = path.read_bytes(), 0
    while filled < needed:
        piece = inflater.decompress(pending, min(_INFLATE_PIECE, needed - filled))
        pending = inflater.unconsumed_tail
        if not piece:
            break
        view[filled : filled + len(piece)] = piece
        filled += len(piece)
    if filled < needed:
        if inflater.eof and inflater.unused_data:  # a multi-member gzip file: let nibabel read it
            return np.asarray(proxy)
        raise EOFError(f"the stream ends after {filled} of the {needed} bytes the header describes")
    if _unscaled(proxy):  # the usual case: view the inflated buffer, no copy
        return np.ndarray(proxy.shape, proxy.dtype, buffer=raw, offset=proxy.offset, order=proxy.order)
    spec = (proxy.shape, proxy.dtype, proxy.offset, proxy.slope, proxy.inter)
    return np.asarray(nib.arrayproxy.ArrayProxy(BytesIO(raw), spec, order=proxy.order))


def _unscaled(proxy: nib.arrayproxy.ArrayProxy) -> bool:
    """True when the header's scaling (scl_slope, scl_inter) leaves the stored values as they are."""
    slope, inter = float(proxy.slope), float(proxy.inter)
    return (np.isnan(slope) or slope in (0.0, 1.0)) and (np.isnan(inter) or inter == 0.0)


def _checked_intensities(data: NDArray, name: str) -> NDArray:
    """Refuse non-finite or constant volumes.

    Integer intensities are kept as stored (exact, and half the memory of float32 for the
    usual int16: converting four volumes cost more than reading them); any floating type
    becomes float32.
    """
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):  # integers are always finite
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(f"{name}: {n_bad} voxels are NaN or infinite. Replace them (e.g. with 0) and try again.")
    low, high = float(data.min()), float(data.max())
    if low == high:
        raise InputError(
            f"{name}: every voxel has the value {low:g}; the volume carries no image. "
            "Check that the right file was exported."
        )
    return data if data.dtype.kind in "iu" else data.astype(np.float32, copy=False)


def _check_labels(label: NDArray, name: str, allowed: Iterable[int]) -> NDArray[np.uint8]:
    allowed_set = set(allowed)
    if label.dtype.kind not in "iu" and (not np.all(np.isfinite(label)) or not np.array_equal(label, np.round(label))):
        raise InputError(f"{name}: a label map must hold whole numbers; found fractional or non-finite values.")
    # Counting the allowed values is a few fast passes; the sort in np.unique only runs on bad files.
    n_allowed = sum(int(np.count_nonzero(label == value)) for value in allowed_set)
    if n_allowed != label.size:
        extra = sorted({int(v) for v in np.unique(label)} - allowed_set)
        raise InputError(
            f"{name}: label values {extra} are not allowed; expected a subset of {sorted(allowed_set)} "
            "(BraTS: 0 background, 1 NCR/NET, 2 edema, 4 enhancing; 3 enhancing in BraTS 2023 files named "
            "t1n/t1c/t2w/t2f). Relabel the file."
        )
    return label.astype(np.uint8, copy=False)


def _relabel(label: NDArray[np.uint8], to_brats: Mapping[int, int]) -> NDArray[np.uint8]:
    """Map a checked label map of another convention to BraTS ``{0, 1, 2, 4}``."""
    lut = np.zeros(256, dtype=np.uint8)
    for value, brats in to_brats.items():
        lut[value] = brats
    return lut[label]


# --------------------------------------------------------------------------- loading


def _assign_files(paths: Iterable[Path]) -> tuple[dict[str, Path], list[Path]]:
    """Map files to modality keys; return (assigned, unmatched NIfTI files)."""
    assigned: dict[str, Path] = {}
    unmatched: list[Path] = []
    for path in sorted(paths):
        key = modality_of(path.name)
        if key is None:
            unmatched.append(path)
            continue
        if key in assigned:
            raise InputError(
                f"{key} was given twice ({assigned[key].name} and {path.name}). Keep one file per modality."
            )
        assigned[key] = path
    return assigned, unmatched


def _case_id_from(paths: Iterable[Path], fallback: str) -> str:
    stems = [_strip_nifti_suffix(p.name) for p in paths]
    for stem in stems:
        cut = re.split(r"[_\-.\s](?=[^_\-.\s]+$)", stem, maxsplit=1)
        if len(cut) == 2 and cut[0]:
            return cut[0]
    return fallback


def _nifti_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(_NIFTI_SUFFIXES)]
    return [p for p in files if not p.name.startswith(("._", "."))]


def load_case(path: str | Path, *, label_path: str | Path | None = None, case_id: str | None = None) -> Case:
    """Load a case from a BraTS folder, a .zip of one, or a 4-D Decathlon NIfTI.

    Args:
        path: Folder with ``<case>_{t1,t1ce,t2,flair}[_seg].nii[.gz]``, a ``.zip`` of such a
            folder, or one 4-D NIfTI in Decathlon order (FLAIR, T1w, T1gd, T2w).
        label_path: Optional ground truth for a 4-D Decathlon image (MSD labels).
        case_id: Overrides the identifier derived from the file names.

    Raises:
        InputError: Anything wrong with the input, with what to do about it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder. Check the path.")
    if path.is_dir():
        files = _nifti_files(path)
        if not files:
            dicoms = [p for p in path.rglob("*") if p.is_file() and (p.suffix.lower() in _DICOM_SUFFIXES)]
            if dicoms or any(p.is_file() and _is_dicom(p.open("rb").read(132)) for p in list(path.rglob("*"))[:5]):
                raise InputError(
                    f"{path.name}: this folder holds DICOM, not NIfTI. Convert it first "
                    "(for example `dcm2niix -z y <folder>`), then load the .nii.gz files."
                )
            raise InputError(f"{path.name}: no .nii or .nii.gz files in this folder.")
        return load_files(files, case_id=case_id or _case_id_from(files, path.name))
    if path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="neuroinsight-zip-") as tmp:
            folder = extract_zip(path, Path(tmp))
            return load_case(folder, case_id=case_id)
    if label_path is not None or modality_of(path.name) is None:
        return load_msd(path, label_path=label_path, case_id=case_id)
    raise InputError(
        f"{path.name}: one modality alone is not a case. Give the folder holding all modalities, "
        "a .zip of it, or a 4-D Decathlon image."
    )


def missing_modalities(present: Iterable[str]) -> list[str]:
    """The required modalities ``present`` lacks (empty when a shipped model can run on it).

    T1ce and FLAIR are required, except that T1 + T2 + FLAIR (a scan without contrast agent)
    is accepted too, for a whole-tumor outline.
    """
    present = set(present)
    if all(m in present for m in NO_CONTRAST_MODALITIES):
        return []
    return [m for m in REQUIRED_MODALITIES if m not in present]


def load_files(paths: Iterable[Path], *, case_id: str | None = None, label_path: Path | None = None) -> Case:
    """Load a case from individual modality files (names decide the modality).

    A single 4-D file whose name matches no modality is read as a Decathlon image.
    """
    paths = [Path(p) for p in paths]
    zips = [p for p in paths if p.name.lower().endswith(".zip")]
    if zips:
        if len(paths) > 1:
            raise InputError("Upload either one .zip of a case or the separate NIfTI files, not both.")
        return load_case(zips[0], case_id=case_id)
    not_nifti = [p.name for p in paths if not p.name.lower().endswith(_NIFTI_SUFFIXES)]
    if not_nifti:
        raise InputError(
            f"{', '.join(not_nifti)}: not a .nii or .nii.gz file name. Upload NIfTI volumes "
            "named like <case>_t1ce.nii.gz, or a .zip of the case folder."
        )
    assigned, unmatched = _assign_files(paths)
    if label_path is not None:
        if "seg" in assigned:
            raise InputError("Ground truth was given twice. Keep one label file.")
        assigned["seg"] = Path(label_path)
    image_keys = [k for k in assigned if k != "seg"]
    if not image_keys and len(unmatched) == 1:
        return load_msd(unmatched[0], label_path=assigned.get("seg"), case_id=case_id)
    if unmatched:
        names = ", ".join(p.name for p in unmatched)
        raise InputError(
            f"Cannot tell the modality of {names}. Name files <case>_t1, _t1ce, _t2, _flair "
            "(or t1n/t1c/t2w/t2f) and _seg for ground truth."
        )
    missing = missing_modalities(image_keys)
    if missing:
        raise InputError(
            f"Missing {' and '.join(m.upper() for m in missing)}: T1ce and FLAIR are required to segment "
            f"(got {', '.join(sorted(image_keys)) or 'none'}). Add the missing file(s)."
            + (" Without contrast, T1 + T2 + FLAIR give the whole tumor only." if missing == ["t1ce"] else "")
        )
    headers = {key: check_nifti_file(p) for key, p in assigned.items()}
    # Every file is checked against one reference grid: T1ce's, or FLAIR's in a set without contrast.
    reference_key = "t1ce" if "t1ce" in headers else "flair"
    reference_name = {"t1ce": "T1ce", "flair": "FLAIR"}[reference_key]
    ref = headers[reference_key]
    ref_shape = ref.shape[:3]
    for key, image in headers.items():
        if image.shape[:3] != ref_shape:
            raise InputError(
                f"{assigned[key].name}: shape {image.shape[:3]} differs from {reference_name}'s {ref_shape}. "
                "All modalities (and the label map) must be co-registered on one grid; resample them first."
            )
        if not np.allclose(image.affine, ref.affine, atol=AFFINE_TOLERANCE_MM):
            raise InputError(
                f"{assigned[key].name}: its affine (position/orientation in space) differs from {reference_name}'s "
                f"by more than {AFFINE_TOLERANCE_MM} mm. Co-register the modalities before uploading."
            )
    source_affine = np.asarray(ref.affine, dtype=np.float64)
    brats2023 = any(_last_token(assigned[k].name) in BRATS2023_TOKENS for k in image_keys)
    to_brats = BRATS2023_TO_BRATS_LABEL if brats2023 else {v: v for v in BRATS_LABELS}

    def read(key: str) -> NDArray:
        name = assigned[key].name
        raw = _read_voxels(headers[key], name)
        if key != "seg":
            return to_canonical(_checked_intensities(raw, name), source_affine)  # a view: flips cost nothing
        label = _check_labels(raw, name, to_brats)
        return to_canonical(_relabel(label, to_brats) if brats2023 else label, source_affine)

    # Decompression releases the GIL, so the files are read in parallel.
    keys = [k for k in (*MODALITIES, "seg") if k in headers]
    with ThreadPoolExecutor(max_workers=2) as pool:
        arrays = dict(zip(keys, pool.map(read, keys), strict=True))
    label = arrays.pop("seg", None)
    images = arrays
    return Case(
        case_id=case_id or _case_id_from(assigned.values(), "case"),
        images=images,
        spacing_mm=_canonical_spacing(source_affine),
        source_affine=source_affine,
        source_header=ref.header.copy(),
        label=label,
        source_files=[p.name for p in assigned.values()],
    )


def _canonical_spacing(affine: NDArray[np.float64]) -> tuple[float, float, float]:
    canonical = nib.orientations.inv_ornt_aff(_orientation_transform(affine, to_canonical=True), (1, 1, 1))
    lin = affine[:3, :3] @ canonical[:3, :3]
    zooms = np.sqrt((lin**2).sum(axis=0))
    return (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def load_msd(path: Path, *, label_path: Path | None = None, case_id: str | None = None) -> Case:
    """Load a Decathlon Task01 4-D image ``(x, y, z, 4)`` in order FLAIR, T1w, T1gd, T2w.

    Decathlon labels (1 edema, 2 non-enhancing, 3 enhancing) become BraTS 2, 1, 4.
    """
    image = check_nifti_file(path, ndim=(4,))
    n_vol = image.shape[3]
    if n_vol != len(MSD_MODALITY_ORDER):
        raise InputError(
            f"{path.name}: a Decathlon image holds 4 volumes (FLAIR, T1w, T1gd, T2w), got {n_vol}. "
            "Upload one file per modality instead."
        )
    affine = np.asarray(image.affine, dtype=np.float64)
    data = _read_voxels(image, path.name)
    images: dict[str, NDArray] = {}
    for index, key in enumerate(MSD_MODALITY_ORDER):
        volume = _checked_intensities(np.ascontiguousarray(data[..., index]), f"{path.name} ({key})")
        images[key] = to_canonical(volume, affine)
    images = {k: images[k] for k in MODALITIES}
    label = None
    if label_path is not None:
        label_path = Path(label_path)
        label_image = check_nifti_file(label_path)
        if label_image.shape[:3] != image.shape[:3]:
            raise InputError(
                f"{label_path.name}: label shape {label_image.shape[:3]} differs from the image's "
                f"{image.shape[:3]}. Upload the label map that belongs to this image."
            )
        raw = _check_labels(_read_voxels(label_image, label_path.name), label_path.name, MSD_TO_BRATS_LABEL)
        label = np.ascontiguousarray(to_canonical(_relabel(raw, MSD_TO_BRATS_LABEL), affine))
    header = image.header.copy()
    header.set_data_shape(image.shape[:3])
    return Case(
        case_id=case_id or _strip_nifti_suffix(path.name),
        images=images,
        spacing_mm=_canonical_spacing(affine),
        source_affine=affine,
        source_header=header,
        label=label,
        source_files=[path.name] + ([Path(label_path).name] if label_path else []),
    )


def safe_filename(name: str) -> str:
    """A bare file name without folders or control characters (uploads may carry any name)."""
    base = Path(str(name).replace("\\", "/")).name
    base = "".join(ch for ch in base if ch.isprintable() and ch not in "/\x00")
    if base in ("", ".", ".."):
        raise InputError(f"{name!r} is not a usable file name. Rename the file and upload it again.")
    return base


def load_uploads(
    files: Mapping[str, bytes],
    *,
    label: tuple[str, bytes] | None = None,
    workdir: Path | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> Case:
    """Load a case from uploaded ``{file name: bytes}`` (modality files, one zip, or one 4-D image).

    Files are written to a private temporary folder (inside ``workdir`` when given) that is
    removed before this function returns.

    Args:
        files: Uploaded file names and contents.
        label: Optional ``(name, bytes)`` ground truth uploaded separately.
        workdir: Parent folder for the temporary files (default: the system temp folder).
        max_bytes: Per-file size cap, checked before anything is written.
    """
    if not files:
        raise InputError("No files were uploaded. Choose the modality files, a .zip, or a 4-D NIfTI.")
    items = list(files.items()) + ([label] if label else [])
    for name, data in items:
        if len(data) > max_bytes:
            raise InputError(f"{name}: {size_text(len(data))} is over the {size_text(max_bytes)} limit per file.")
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="neuroinsight-upload-", dir=workdir))
    try:
        paths = []
        for name, data in files.items():
            target = tmp / safe_filename(name)
            if target.exists():
                raise InputError(f"{target.name} was uploaded twice. Keep one copy.")
            target.write_bytes(data)
            paths.append(target)
        label_path = None
        if label is not None:
            label_dir = tmp / "_label"
            label_dir.mkdir()
            label_path = label_dir / safe_filename(label[0])
            label_path.write_bytes(label[1])
        return load_files(paths, label_path=label_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extract_zip(path: Path, target: Path) -> Path:
    """Extract a case zip safely into ``target`` and return the folder holding the NIfTI files.

    Refuses absolute paths, ``..`` entries, nested zips, more than ``MAX_ZIP_TOTAL_BYTES``
    in total (counted while writing, not trusted from the header) and members that
    compress suspiciously well (zip bombs).
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(f"{path.name}: not a readable zip file ({err}). Re-create the archive.") from err
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        declared = 0
        for member in members:
            name = member.filename
            parts = Path(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise InputError(
                    f"{path.name}: the entry {name!r} points outside the archive (absolute path or '..'). "
                    "Zip the case folder itself."
                )
            if name.lower().endswith(".zip"):
                raise InputError(f"{path.name}: contains another zip ({name}). Upload the inner archive's content.")
            declared += member.file_size
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > ZIP_RATIO_CHECK_BYTES and ratio > MAX_ZIP_RATIO:
                raise InputError(f"{path.name}: {name} expands {ratio:.0f}x, which looks like a zip bomb. Refused.")
        if declared > MAX_ZIP_TOTAL_BYTES:
            raise InputError(
                f"{path.name}: expands to {size_text(declared)}, over the {size_text(MAX_ZIP_TOTAL_BYTES)} limit. "
                "Upload the case files only."
            )
        written = 0
        for index, member in enumerate(members):
            base = Path(member.filename).name
            if base.startswith(("._", ".")) or not base.lower().endswith(_NIFTI_SUFFIXES + _DICOM_SUFFIXES):
                continue
            out = target / f"{index:03d}" / safe_filename(base)
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as src, out.open("wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > MAX_ZIP_TOTAL_BYTES:
                            raise InputError(f"{path.name}: expands past the size limit. Refused.")
                        dst.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError) as err:
                raise InputError(f"{path.name}: {member.filename} is corrupt in the archive ({err}).") from err
    return target


# --------------------------------------------------------------------------- writing


def save_label_map(label: NDArray, case: Case, path: str | Path) -> Path:
    """Write a canonical label map back on the source grid: same shape, affine, orientation; uint8.

    Args:
        label: uint8 ``(x, y, z)`` in canonical orientation, values in ``{0, 1, 2, 4}``.
        case: The case the labels belong to (its source affine and header are used).
        path: Output ``.nii.gz`` or ``.nii``.
    """
    return save_volume(np.asarray(label, dtype=np.uint8), case, path)


def save_volume(volume: NDArray, case: Case, path: str | Path) -> Path:
    """Write a canonical ``(x, y, z[, c])`` array on the case's source grid with its affine and header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(volume_bytes(volume, case, gz=path.name.lower().endswith(".gz")))
    return path


def volume_bytes(volume: NDArray, case: Case, *, gz: bool = True) -> bytes:
    """The NIfTI file (``.nii.gz`` if ``gz``) of a canonical array on the case's source grid."""
    data = np.asfortranarray(from_canonical(volume, case.source_affine))  # NIfTI stores x fastest
    header = case.source_header.copy()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    image = nib.Nifti1Image(data, case.source_affine, header)
    image.header.set_slope_inter(1.0, 0.0)
    sform_code = int(case.source_header["sform_code"]) or 1
    qform_code = int(case.source_header["qform_code"]) or 1
    image.set_sform(case.source_affine, code=sform_code)
    image.set_qform(case.source_affine, code=qform_code)
    raw = image.to_bytes()
    # Level 1, as nibabel's own default for .nii.gz, with ISA-L (several times faster than zlib).
    return igzip.compress(raw, compresslevel=1, mtime=0) if gz else raw


def label_map_bytes(label: NDArray, case: Case) -> bytes:
    """The ``.nii.gz`` bytes of :func:`save_label_map` (for downloads)."""
    return volume_bytes(np.asarray(label, dtype=np.uint8), case)


def save_case(case: Case, folder: str | Path) -> Path:
    """Write a case as a BraTS folder ``<folder>/<id>_<modality>.nii.gz`` (+ ``_seg``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key, volume in case.images.items():
        save_volume(volume.astype(np.float32), case, folder / f"{case.case_id}_{key}.nii.gz")
    if case.label is not None:
        save_label_map(case.label, case, folder / f"{case.case_id}_seg.nii.gz")
    return folder


# --------------------------------------------------------------------------- data folders


def list_cases(data_dir: str | Path) -> list[Path]:
    """Case folders directly inside ``data_dir`` (those holding NIfTI files), sorted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(
            f"Data folder {data_dir} does not exist. Set NEUROINSIGHT_DATA or pass --data-dir to a folder "
            "of BraTS case folders."
        )
    return sorted(p for p in data_dir.iterdir() if p.is_dir() and any(p.glob("*.nii*")))


def read_grades(data_dir: str | Path) -> dict[str, str]:
    """``grades.csv`` (columns ``case,grade``) as ``{case: "HGG"|"LGG"}``; empty if absent."""
    csv_path = Path(data_dir) / "grades.csv"
    if not csv_path.exists():
        return {}
    grades: dict[str, str] = {}
    for line in csv_path.read_text().splitlines()[1:]:
        if line.strip():
            case, grade = (s.strip() for s in line.split(",")[:2])
            grades[case] = grade.upper()
    return grades
