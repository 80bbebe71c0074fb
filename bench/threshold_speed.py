"""Does the tuned region decoding cost end-to-end time? The bench's end-to-end figure, both ways.

Runs ``neuroinsight.bench.bench_segment_vs_forward`` (7 alternating rounds) with the default
decoding thresholds and with halves, twice each; swap ``ORDER`` to see the order effect.

    PYTHONPATH=. python bench/threshold_speed.py
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from neuroinsight import bench, inference
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.preprocessing import HALF

TUNED = inference.DEFAULT_POSTPROCESS
ORDER = (("halves", replace(TUNED, region_thresholds=HALF)), ("tuned", TUNED))

if __name__ == "__main__":
    for round_ in range(2):
        for name, post in ORDER:
            inference.DEFAULT_POSTPROCESS = post  # bench reads it at call time
            figure = bench.bench_segment_vs_forward(Path("models/attention_unet.keras"), DEFAULT_DATA_DIR, 7)[0]
            print(round_, name, f"{figure.ratio:.3f}", figure.numerator, figure.denominator, figure.note)
