"""End-to-end / forward ratio with the tuned region thresholds vs halves: the bench figure, alternating.

    PYTHONPATH=. python bench/threshold_speed.py
"""
from dataclasses import replace
from pathlib import Path
from neuroinsight import bench, inference
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.preprocessing import HALF
tuned = inference.DEFAULT_POSTPROCESS
half = replace(tuned, region_thresholds=HALF)
model = Path("models/attention_unet.keras"); data = DEFAULT_DATA_DIR
for round_ in range(2):
    for name, post in (("half", half), ("tuned", tuned)):
        inference.DEFAULT_POSTPROCESS = post
        f = bench.bench_segment_vs_forward(model, data, 7)[0]
        print(round_, name, f)
