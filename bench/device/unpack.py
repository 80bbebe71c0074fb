"""Device side: rebuild the BraTS case folders from the transfer package (cropped, intensities // 4)."""

import io
import json
import lzma
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
meta = json.loads((src / "meta.json").read_text())
arrays = np.load(io.BytesIO(lzma.decompress((src / "brats.npz.xz").read_bytes())))
for case, m in meta.items():
    folder = dst / case
    folder.mkdir(parents=True, exist_ok=True)
    box = tuple(slice(a, b) for a, b in m["box"])
    for key in ("t1", "t1ce", "t2", "flair", "seg"):
        full = np.zeros(m["shape"], dtype=np.uint8 if key == "seg" else np.int16)
        part = arrays[f"{case}__{key}"]
        full[box] = part if key == "seg" else part * 4
        nib.save(nib.Nifti1Image(full, np.array(m["affine"])), folder / f"{case}_{key}.nii")
(dst / "grades.csv").write_text((src / "grades.csv").read_text())
print("unpacked", len(meta), "cases")
