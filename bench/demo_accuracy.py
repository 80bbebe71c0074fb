"""How well do the shipped models segment the app's built-in demo case?

The demo is the MNI template with an inserted synthetic glioma (``neuroinsight.ui`` builds it
with ``phantom.make_template_case(seed=phantom.DEMO_SEED)``); its tumor is known exactly, so Dice
against it says whether the demo looks sensible. Scored with flip TTA under the shipped
defaults (and without their core-island step), plain argmax without clean-ups, and region
decoding at halves with the largest component.

    PYTHONPATH=. python bench/demo_accuracy.py [MODEL ...]
"""

from __future__ import annotations

import sys
from dataclasses import replace

from neuroinsight import phantom
from neuroinsight.inference import DEFAULT_POSTPROCESS, PostprocessConfig, Segmenter
from neuroinsight.pipeline import analyse_case

VARIANTS = {
    "defaults": DEFAULT_POSTPROCESS,
    "defaults without the core-island step": replace(DEFAULT_POSTPROCESS, core_island_fraction=0.0),
    "argmax": PostprocessConfig(),
    "halves+largest": PostprocessConfig(decoding="regions", largest_component_only=True),
}


def main(paths: list[str]) -> None:
    case = phantom.make_template_case(seed=phantom.DEMO_SEED, case_id="demo_case")
    for path in paths or ["models/attention_unet_4mod.keras", "models/attention_unet.keras"]:
        segmenter = Segmenter.from_path(path)
        for name, post in VARIANTS.items():
            result = analyse_case(case, segmenter, tta=True, attention=False, post=post)
            dice = " / ".join(f"{region} {score.dice:.3f}" for region, score in result.scores.items())
            print(f"{path} {name}: {dice}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
