"""Pack the BraTS data folder small enough for a lent GPU machine (64 MiB carry limit).

Each case is cropped to the bounding box of its non-zero voxels (lossless: everything outside
is 0), intensities are divided by 4 (z-scoring is scale-invariant; this drops ~2 bits of
noise-level detail) and everything is stored as one lzma-compressed .npz (~50 MB for the 12 cases).
Usage: python bench/device/pack.py ../shared/data/brats18 .devdata   (then carry .devdata)
"""

import io
import json
import lzma
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
arrays, meta = {}, {}
for folder in sorted(p for p in src.iterdir() if p.is_dir()):
    case = folder.name
    volumes = {m: nib.load(folder / f"{case}_{m}.nii.gz") for m in ("t1", "t1ce", "t2", "flair", "seg")}
    data = {m: np.asarray(img.dataobj) for m, img in volumes.items()}
    nonzero = np.zeros(data["t1"].shape, bool)
    for volume in data.values():
        nonzero |= volume != 0
    box = [(int(i.min()), int(i.max()) + 1) for i in np.nonzero(nonzero)]
    crop = tuple(slice(a, b) for a, b in box)
    for m, volume in data.items():
        arrays[f"{case}__{m}"] = volume[crop] if m == "seg" else (volume[crop] // 4).astype(np.int16)
    meta[case] = {"box": box, "shape": list(data["t1"].shape), "affine": volumes["t1"].affine.tolist()}
buffer = io.BytesIO()
np.savez(buffer, **arrays)
(dst / "brats.npz.xz").write_bytes(lzma.compress(buffer.getvalue(), preset=6))
(dst / "meta.json").write_text(json.dumps(meta))
shutil.copy(src / "grades.csv", dst / "grades.csv")
print(f"packed {len(meta)} cases into {dst}")
