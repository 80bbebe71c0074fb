"""What the fold-model scripts here share: each fold model's own test patients, and their rows.

A cross-validation fold model may only be scored on the patients its fold held out (the split in
its JSON); every script that re-scores fold models under a new variant walks them the same way
and writes rows in the cross-validation CSV format, so that ``crossval-table`` compares them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from numpy.typing import NDArray

from neuroinsight import io
from neuroinsight.inference import Segmenter
from neuroinsight.metrics import score_case
from neuroinsight.pipeline import score_rows


def fold_test_cases(
    models: Sequence[Path], data_dir: Path, load: Callable[[Path], Segmenter] = Segmenter.from_path
) -> Iterator[tuple[Path, Segmenter, io.Case]]:
    """Each fold model (loaded once, by ``load``) with each of its own test patients, in order."""
    folders = {p.name: p for p in io.list_cases(data_dir)}
    for path in models:
        segmenter = load(path)
        for case_id in segmenter.info["split"]["test"]:
            yield path, segmenter, io.load_case(folders[case_id])


def variant_rows(
    case: io.Case, labels: NDArray, segmenter: Segmenter, *, tta: str, post: str, **columns: object
) -> list[dict[str, object]]:
    """Score one variant's label map against the case's truth as CSV rows, and print a line for the log."""
    scores = score_case(labels, case.label, spacing_mm=case.spacing_mm)
    info = segmenter.info
    print(
        f"{segmenter.name} fold {info['fold']} {case.case_id} {tta} {post}: "
        + " ".join(f"{r} {scores[r].dice:.3f} ({scores[r].hd95_mm:.1f} mm)" for r in ("WT", "TC", "ET")),
        flush=True,
    )
    return score_rows(
        case.case_id, scores, segmenter.name, preset=info["preset"], tta=tta, post=post, fold=info["fold"], **columns
    )
