"""Benchmarks: each figure is a ratio of two things measured in the same run on the same machine.

``python -m neuroinsight bench [--quick]`` prints one line per figure (ratio, the two
absolute numbers, target where an issue names one) after a header describing the
machine. ``--quick`` uses fewer repeats and smaller sizes (a smoke test for CI,
never a timed assertion). Results of full runs are recorded in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuroinsight import io, phantom


@dataclass
class Figure:
    """One benchmark line: ``ratio = numerator / denominator``."""

    name: str
    ratio: float
    numerator: str
    denominator: str
    target: str = ""
    note: str = ""

    def line(self) -> str:
        target = f"  [target {self.target}]" if self.target else ""
        note = f"  [{self.note}]" if self.note else ""
        return f"{self.name:<58} {self.ratio:8.3f}   ({self.numerator} / {self.denominator}){target}{note}"


def _timed(fn: Callable[[], object]) -> float:
    """Wall time of one call."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    """Fastest wall time of ``repeats`` calls after one warm-up (least disturbed by other load)."""
    fn()
    return min(_timed(fn) for _ in range(repeats))


def machine_description() -> str:
    """CPU model, cores, TensorFlow/Keras versions and bf16 support flags."""
    import keras
    import tensorflow as tf

    from neuroinsight.training import cpu_bf16_flags

    cpu = platform.processor() or platform.machine()
    bf16 = "unknown"
    with contextlib.suppress(OSError):  # not Linux
        cpuinfo = Path("/proc/cpuinfo").read_text()
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
        bf16 = ", ".join(cpu_bf16_flags(cpuinfo)) or "no bf16 flags"
    versions = f"TensorFlow {tf.__version__}, Keras {keras.__version__}; Python {platform.python_version()}"
    return f"{cpu}; {os.cpu_count()} cores; {bf16}; {versions}"


def model_flops(model) -> float:
    """Forward FLOPs of one input slice (2 per multiply-add; convolutions, gates' included)."""
    from neuroinsight.model import AttentionGate

    total = 0.0
    for layer in model.layers:
        if layer.__class__.__name__ == "Conv2D":
            _, h, w, c_out = layer.output.shape
            total += 2.0 * h * w * float(np.prod(layer.kernel_size)) * layer.input.shape[-1] * c_out
        elif isinstance(layer, AttentionGate):
            skip, gating = (t.shape for t in layer.input)
            inter = layer.inter_channels
            total += 2.0 * skip[1] * skip[2] * (skip[3] * inter + gating[3] * inter + inter)
    return total


def bench_forward_vs_matmul(model_path: Path, repeats: int) -> list[Figure]:
    """Model forward GFLOP/s against a plain matmul of comparable size, float32 and bfloat16."""
    import tensorflow as tf

    from neuroinsight.model import load_model, with_precision

    base = load_model(model_path)
    flops_per_slice = model_flops(base)
    batch = 16
    x = np.random.default_rng(0).standard_normal((batch, *base.input_shape[1:])).astype(np.float32)
    figures = []
    n = 2048
    for policy, dtype in (("float32", tf.float32), ("mixed_bfloat16", tf.bfloat16)):
        model = with_precision(base, policy)
        forward = _best_of(lambda m=model: m(x, training=False), repeats)
        a = tf.random.normal((n, n), dtype=tf.float32)
        a = tf.cast(a, dtype)
        matmul = _best_of(lambda a=a: tf.matmul(a, a).numpy(), repeats)
        model_gflops = flops_per_slice * batch / forward / 1e9
        matmul_gflops = 2.0 * n**3 / matmul / 1e9
        figures.append(
            Figure(
                f"forward / matmul throughput ({policy})",
                model_gflops / matmul_gflops,
                f"model {model_gflops:.0f} GFLOP/s",
                f"matmul {n}^2 {matmul_gflops:.0f} GFLOP/s",
            )
        )
    figures.append(Figure("model forward FLOPs per slice (GFLOP)", flops_per_slice / 1e9, "counted", "1"))
    return figures


def bench_segment_vs_forward(model_path: Path, data_dir: Path, repeats: int) -> list[Figure]:
    """End-to-end segment (load, validate, preprocess, predict, resample, write) against the forward alone.

    The case is the first real case in ``data_dir`` (its four modalities, no ground truth, as
    a user's upload), else a 240x240x155 phantom; the model is the one ``segment`` picks for
    it. The two timings alternate, so drifting machine load affects both alike.
    """
    from neuroinsight.inference import BATCH_SLICES, DEFAULT_POSTPROCESS, Segmenter, choose_model

    cases = io.list_cases(data_dir) if data_dir.is_dir() else []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "case"
        if cases:
            folder.mkdir()
            for path in sorted(cases[0].iterdir()):
                if io.modality_of(path.name) in io.MODALITIES:
                    (folder / path.name).write_bytes(path.read_bytes())
            source = cases[0].name
        else:
            case = phantom.make_case(seed=1, shape=(240, 240, 155))
            case.label = None
            io.save_case(case, folder)
            source = "phantom"
        case = io.load_case(folder)
        segmenter = Segmenter.from_path(choose_model(model_path.parent, case.modalities))
        out = Path(tmp) / "seg.nii.gz"

        def end_to_end() -> None:
            loaded = io.load_case(folder)
            seg = segmenter.segment(loaded, attention=False, post=DEFAULT_POSTPROCESS)
            io.save_label_map(seg.labels, loaded, out)

        prepared = segmenter.prepare(case)
        todo = np.nonzero(prepared.has_brain)[0]
        batches = [prepared.batch(todo[i : i + BATCH_SLICES]) for i in range(0, len(todo), BATCH_SLICES)]

        def forward_only() -> None:
            for batch in batches:
                segmenter.predict_slices(batch)

        end_to_end(), forward_only()  # warm-up
        totals, forwards = [], []
        for _ in range(repeats):
            totals.append(_timed(end_to_end))
            forwards.append(_timed(forward_only))
    total, forward = min(totals), min(forwards)
    return [
        Figure(
            f"segment end to end / forward alone ({'x'.join(map(str, case.shape))})",
            total / forward,
            f"{total:.2f} s",
            f"{forward:.2f} s over {len(todo)} slices",
            "<= 1.3",
            f"{source}, {segmenter.name}; median ratio {np.median(totals) / np.median(forwards):.2f}",
        )
    ]


def bench_generator_vs_training(model_path: Path, data_dir: Path, quick: bool) -> list[Figure]:
    """Slices/s the generator delivers against slices/s a training step consumes."""
    import keras

    from neuroinsight.data import SliceDataset
    from neuroinsight.model import build_attention_unet, load_model, logits_view, model_config_of
    from neuroinsight.preprocessing import DEFAULT_PREPROCESS
    from neuroinsight.training import cross_entropy, fast_training_precision

    folders = io.list_cases(data_dir)[: 2 if quick else 4]
    figures = []
    precision = fast_training_precision()  # what `train --precision auto` runs here
    network = build_attention_unet(model_config_of(load_model(model_path)), dtype_policy=precision)
    model = logits_view(network)  # the step `train` runs
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=cross_entropy)
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (2, 16):
            cached = SliceDataset(folders, DEFAULT_PREPROCESS, batch_size=batch, cache_dir=Path(tmp))
            steps = 4 if quick else 12
            started = time.perf_counter()
            for i in range(steps):
                cached[i % len(cached)]
            cached_rate = steps * batch / (time.perf_counter() - started)
            x, y = cached[0]
            model.train_on_batch(x, y)
            started = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            train_rate = steps * batch / (time.perf_counter() - started)
            figures.append(
                Figure(
                    f"generator (cached) / training step ({precision}), batch {batch}",
                    cached_rate / train_rate,
                    f"{cached_rate:.0f} slices/s",
                    f"{train_rate:.1f} slices/s",
                    ">= 3",
                )
            )
            # A whole epoch: without a cache each case is read once per epoch, so fewer batches
            # would time one case's reading spread over too few slices.
            uncached = SliceDataset(folders, DEFAULT_PREPROCESS, batch_size=batch, cache_dir=None)
            started = time.perf_counter()
            for i in range(len(uncached)):
                uncached[i]
            uncached_rate = len(uncached.records) / (time.perf_counter() - started)
            figures.append(
                Figure(
                    f"generator (no cache) / training step ({precision}), batch {batch}",
                    uncached_rate / train_rate,
                    f"{uncached_rate:.1f} slices/s",
                    f"{train_rate:.1f} slices/s",
                    ">= 3",
                )
            )
    return figures


def _rss_child(code: str) -> float:
    """Peak resident memory (MB) of a fresh Python process running ``code``.

    Read from ``VmHWM`` in ``/proc/self/status``: unlike ``ru_maxrss``, it is not inherited
    from the (large) benchmarking parent across ``exec``.
    """
    script = code + ("\nprint('PEAK', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))")
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    peak_kb = next(int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("PEAK"))
    return peak_kb / 1024


def bench_memory(model_path: Path, quick: bool) -> list[Figure]:
    """Peak RSS of one case segmentation and of the app serving two sessions with two cases."""
    baseline = _rss_child("import neuroinsight.inference, keras, tensorflow")
    one_case = _rss_child(
        "from neuroinsight import phantom\nfrom neuroinsight.inference import Segmenter\n"
        f"s = Segmenter.from_path({str(model_path)!r})\n"
        "s.segment(phantom.make_case(seed=2), tta=True)\n"
    )
    figures = [
        Figure(
            "peak RSS: one 240x240x155 case (with TTA) / runtime imports",
            one_case / baseline,
            f"{one_case:.0f} MB",
            f"{baseline:.0f} MB",
            "< 2048 MB absolute",
        )
    ]
    if not quick:
        repo = Path(__file__).resolve().parent.parent
        two_sessions = _rss_child(
            "from streamlit.testing.v1 import AppTest\n"
            "ats = []\n"
            "for _ in range(2):\n"
            f"    at = AppTest.from_file({str(repo / 'app.py')!r}, default_timeout=600)\n"
            "    at = at.switch_page('pages/1_Upload.py').run()\n"
            "    next(b for b in at.button if b.label == 'Load the demo case').click().run()\n"
            "    ats.append(at)\n"
            "assert all('result' in a.session_state for a in ats)\n"
        )
        figures.append(
            Figure(
                "peak RSS: app, two sessions with a case each / one case",
                two_sessions / one_case,
                f"{two_sessions:.0f} MB",
                f"{one_case:.0f} MB",
            )
        )
    return figures


def bench_ui_and_report(model_path: Path, repeats: int) -> list[Figure]:
    """Viewer slider re-render and home page render against one slice forward; PDF against segmentation."""
    from streamlit.testing.v1 import AppTest

    from neuroinsight import viz
    from neuroinsight.inference import Segmenter
    from neuroinsight.pipeline import analyse_case
    from neuroinsight.report import build_pdf

    segmenter = Segmenter.from_path(model_path)
    case = phantom.make_case(seed=3)
    result = analyse_case(case, segmenter)
    x = np.zeros((1, *segmenter.model.input_shape[1:]), np.float32)
    # One slice through the compiled predict function (not padded to a batch).
    one_forward = _best_of(lambda: segmenter.model.predict_on_batch(x), repeats * 3)
    index = iter(range(10_000))

    def slider_move() -> None:
        z = 40 + next(index) % 60
        images = viz.render_layers(result, "flair", "axial", z, "labels")
        for _, rgb in images:
            viz.image_figure(rgb).to_json()

    slider = _best_of(slider_move, repeats * 3)
    repo = Path(__file__).resolve().parent.parent
    home = AppTest.from_file(str(repo / "app.py"), default_timeout=120)
    home_time = _best_of(lambda: home.run(), repeats)
    segmentation = _best_of(lambda: segmenter.segment(case, attention=False), repeats)
    pdf = _best_of(lambda: build_pdf(result), repeats)
    return [
        Figure(
            "viewer slider re-render / one slice forward",
            slider / one_forward,
            f"{slider * 1000:.0f} ms",
            f"{one_forward * 1000:.0f} ms",
            "< 200 ms absolute",
        ),
        Figure(
            "home page render (AppTest, model warm) / one slice forward",
            home_time / one_forward,
            f"{home_time * 1000:.0f} ms",
            f"{one_forward * 1000:.0f} ms",
            "< 3 s absolute",
        ),
        Figure(
            "PDF report / segmentation", pdf / segmentation, f"{pdf:.2f} s", f"{segmentation:.2f} s", "< 3 s absolute"
        ),
    ]


def bench_growth(model_path: Path, quick: bool) -> list[Figure]:
    """Segmentation time against volume size, and batch evaluation time against the number of cases."""
    from neuroinsight.inference import Segmenter
    from neuroinsight.pipeline import evaluate_folder

    segmenter = Segmenter.from_path(model_path)
    # --quick is a smoke test: each figure computed, on volumes small enough for CI on a slow CPU.
    shapes = [(64, 64, 64), (128, 128, 96)] if quick else [(128, 128, 128), (240, 240, 155), (512, 512, 200)]
    times = {}
    for shape in shapes:
        case = phantom.make_case(seed=4, shape=shape)
        times[shape] = _best_of(lambda c=case: segmenter.segment(c, attention=False), 1)
    base = shapes[0]
    figures = [
        Figure(
            f"segment time {'x'.join(map(str, s))} / {'x'.join(map(str, base))}",
            times[s] / times[base],
            f"{times[s]:.2f} s",
            f"{times[base]:.2f} s",
            note=f"voxels x{np.prod(s) / np.prod(base):.2f}; brain slices set the model's share",
        )
        for s in shapes[1:]
    ]
    counts = [1, 4] if quick else [1, 4, 16]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max(counts)):
            shape = (64, 64, 48) if quick else (128, 128, 96)
            io.save_case(phantom.make_case(seed=10 + i, shape=shape), Path(tmp) / f"c{i:02d}")
        folders = io.list_cases(tmp)
        batch_times = {}
        for n in counts:
            started = time.perf_counter()
            evaluate_folder(folders[:n], lambda _c: segmenter)
            batch_times[n] = time.perf_counter() - started
    figures += [
        Figure(
            f"batch evaluation {n} cases / 1 case",
            batch_times[n] / batch_times[1],
            f"{batch_times[n]:.1f} s",
            f"{batch_times[1]:.1f} s",
            note=f"linear = {n}",
        )
        for n in counts[1:]
    ]
    return figures


def run(model_path: Path, data_dir: Path, *, quick: bool, print_line: Callable[[str], None] = print) -> list[Figure]:
    """Run every benchmark, printing each line as it is measured; return the figures."""
    from neuroinsight.inference import DEFAULT_PRECISION

    repeats = 1 if quick else 3
    print_line(f"machine: {machine_description()}")
    print_line(f"model: {model_path.name}; inference precision {DEFAULT_PRECISION}; quick={quick}")
    figures: list[Figure] = []
    steps: list[Callable[[], list[Figure]]] = [
        lambda: bench_forward_vs_matmul(model_path, repeats),
        lambda: bench_segment_vs_forward(model_path, data_dir, 1 if quick else 7),
        lambda: bench_ui_and_report(model_path, repeats),
        lambda: bench_memory(model_path, quick),
        lambda: bench_growth(model_path, quick),
    ]
    if io.list_cases(data_dir) if data_dir.is_dir() else []:
        steps.insert(2, lambda: bench_generator_vs_training(model_path, data_dir, quick))
    else:
        print_line(f"(generator benchmark skipped: no cases in {data_dir})")
    for step in steps:
        for figure in step():
            figures.append(figure)
            print_line(figure.line())
    return figures


def to_json(figures: list[Figure]) -> str:
    """Figures as JSON (for RESULTS.md bookkeeping)."""
    return json.dumps([f.__dict__ for f in figures], indent=2)
