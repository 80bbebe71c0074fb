"""How sharp is each modality of each case? Mean |difference| between neighbouring voxels.

A scan acquired at lower resolution, or interpolated from thick slices, is smoother: its
neighbouring voxels differ less. Measured on the scale the networks see (z-score over the brain
mask, as ``prepare_volume`` does), inside the brain eroded by 5 voxels so the brain's own edge
does not count, along each axis (x, y, z) of the canonical orientation.

    PYTHONPATH=. python bench/crossval/sharpness.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion

from neuroinsight import io
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.preprocessing import brain_mask, zscore

ERODE_VOXELS = 5


def sharpness(volume: np.ndarray, inner: np.ndarray) -> tuple[float, ...]:
    """Mean |x[i+1] - x[i]| along each axis over voxel pairs whose first voxel is in ``inner``."""
    out = []
    for axis in range(volume.ndim):
        step = np.abs(np.diff(volume, axis=axis))
        first = tuple(slice(0, -1) if a == axis else slice(None) for a in range(volume.ndim))
        out.append(float(step[inner[first]].mean()))
    return tuple(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()

    print("| case | " + " | ".join(f"{m} (x / y / z)" for m in io.MODALITIES) + " |")
    print("|---|" + "---|" * len(io.MODALITIES))
    for folder in io.list_cases(args.data):
        case = io.load_case(folder)
        mask = brain_mask(case.images)
        inner = binary_erosion(mask, iterations=ERODE_VOXELS)
        cells = []
        for modality in io.MODALITIES:
            values = sharpness(zscore(case.images[modality], mask), inner)
            cells.append(" / ".join(f"{v:.2f}" for v in values))
        print(f"| {case.case_id} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
