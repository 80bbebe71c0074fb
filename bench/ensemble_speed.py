"""What does the opt-in ensemble cost? Segmentation time of one real case, one model vs both.

Loads the first case of the data folder (the demo case without one), warms both set-ups,
then times ``Segmenter.segment`` (flip TTA, the default decoding, as the app runs it) in
alternating rounds and prints the best and the median of each and their ratio.

    PYTHONPATH=. python bench/ensemble_speed.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from neuroinsight import io, phantom
from neuroinsight.bench import _timed
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.inference import DEFAULT_POSTPROCESS, Segmenter

MODELS = Path("models")


def main(rounds: int) -> None:
    folders = io.list_cases(DEFAULT_DATA_DIR) if DEFAULT_DATA_DIR.is_dir() else []
    case = io.load_case(folders[0]) if folders else phantom.make_template_case(seed=phantom.DEMO_SEED)
    four = Segmenter.from_path(MODELS / "attention_unet_4mod.keras")
    both = Segmenter.ensemble([four, Segmenter.from_path(MODELS / "attention_unet.keras")])
    setups = {"four-modality": four, "ensemble": both}
    times: dict[str, list[float]] = {name: [] for name in setups}
    for round_ in range(rounds + 1):  # round 0 warms up (graph tracing) and is not counted
        for name, segmenter in setups.items():
            seconds = _timed(lambda s=segmenter: s.segment(case, tta=True, attention=False, post=DEFAULT_POSTPROCESS))
            if round_:
                times[name].append(seconds)
    for name, values in times.items():
        print(f"{case.case_id} {name}: best {min(values):.2f} s, median {statistics.median(values):.2f} s")
    best = min(times["ensemble"]) / min(times["four-modality"])
    median = statistics.median(times["ensemble"]) / statistics.median(times["four-modality"])
    print(f"ensemble / four-modality: best {best:.2f}x, median {median:.2f}x ({rounds} rounds)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
