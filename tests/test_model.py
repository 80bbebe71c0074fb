"""The Attention-UNet: shapes, parameters, gates, serialisation, precision, training and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import replace

import keras
import numpy as np
import pytest

from neuroinsight import io
from neuroinsight.errors import InputError
from neuroinsight.model import (
    AttentionGate,
    ModelConfig,
    build_attention_unet,
    deep_supervision_view,
    load_model,
    logits_view,
    model_config_of,
    with_attention_outputs,
    with_precision,
)
from neuroinsight.preprocessing import PreprocessConfig
from neuroinsight.training import (
    PRECISIONS,
    TrainConfig,
    choose_training_precision,
    cpu_bf16_flags,
    deeply_supervised,
    fast_training_precision,
    read_history,
    train,
    training_metrics,
)
from tests.conftest import REPO

TINY = ModelConfig(input_channels=2, image_size=32, filters=(4, 8, 16), bottleneck=32)
#: One epoch of that network on 32x32 phantom slices.
TINY_TRAIN = TrainConfig(
    preprocess=PreprocessConfig(image_size=32, slice_range=(10, 30)),
    filters=(4, 8, 16),
    bottleneck=32,
    epochs=1,
    batch_size=8,
)


def test_seed_model_shapes_and_parameter_count():
    model = build_attention_unet()
    assert model.input_shape == (None, 128, 128, 2)
    assert model.output_shape == (None, 128, 128, 4)
    assert model.count_params() == 2_183_911  # pinned: a change to the architecture must be deliberate
    assert len([layer for layer in model.layers if isinstance(layer, AttentionGate)]) == 3
    assert model_config_of(model) == ModelConfig()


@pytest.mark.parametrize("size", [32, 64])
def test_output_is_a_distribution_for_two_sizes(size):
    model = build_attention_unet(ModelConfig(input_channels=4, image_size=size, filters=(4, 8, 16), bottleneck=32))
    out = np.asarray(model(np.random.rand(2, size, size, 4).astype(np.float32)))
    assert out.shape == (2, size, size, 4)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_input_size_must_survive_every_pooling_level():
    assert TINY_TRAIN.with_input(image_size=40).model.image_size == 40  # 3 levels: multiples of 8
    for size in (36, 4):
        with pytest.raises(InputError, match="multiple of 8"):
            TINY_TRAIN.with_input(image_size=size)
    wider = TINY_TRAIN.with_input(context=1)
    assert wider.preprocess.image_size == 32 and wider.model.input_channels == 6


def test_attention_coefficients_in_unit_interval_with_skip_shape():
    model = build_attention_unet(TINY)
    outputs = with_attention_outputs(model)(np.random.rand(1, 32, 32, 2).astype(np.float32))
    _, *alphas = (np.asarray(o) for o in outputs)
    assert [a.shape for a in alphas] == [(1, 32, 32, 1), (1, 16, 16, 1), (1, 8, 8, 1)]
    for alpha in alphas:
        assert alpha.min() >= 0 and alpha.max() <= 1


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_safe_mode_round_trip_gives_identical_outputs(tmp_path, policy):
    # Under mixed precision too: training saves bfloat16 models, and a loaded one must run as is.
    model = build_attention_unet(TINY, dtype_policy=policy)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    x = np.random.rand(2, 32, 32, 2).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    gate = loaded.get_layer("attention_gate1")
    assert gate.get_config()["inter_channels"] == 4


@pytest.mark.parametrize(("norm", "per_channel"), [("batch", 4), ("instance", 2)])
def test_normalized_variant_round_trips_and_reads_back_its_norm(tmp_path, norm, per_channel):
    config = replace(TINY, norm=norm)
    model = build_attention_unet(config)
    assert model_config_of(model) == config
    # Each 3x3 convolution trades its bias for the normalization's weights (BatchNormalization
    # also keeps a moving mean and variance); the gates and the output layer are unchanged.
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D" and layer.name != "logits"]
    extra = sum((per_channel - 1) * layer.filters for layer in convs)
    assert model.count_params() == build_attention_unet(TINY).count_params() + extra
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    assert model_config_of(loaded) == config and model_config_of(with_precision(loaded, "mixed_bfloat16")) == config
    with pytest.raises(ValueError, match="norm must be one of"):
        build_attention_unet(replace(TINY, norm="layer"))
    with pytest.raises(InputError, match="norm must be one of"):
        replace(TINY_TRAIN, norm="layer")


def test_logits_view_shares_the_weights():
    model = build_attention_unet(TINY)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 2)).astype(np.float32)
    logits = np.asarray(logits_view(model)(x))
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.parametrize("norm", ["none", "instance"])
def test_deep_supervision_view_adds_upsampled_heads_and_shares_the_weights(norm):
    model = build_attention_unet(replace(TINY, norm=norm))
    view = deep_supervision_view(model)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 2)).astype(np.float32)
    outputs = np.asarray(view(x))
    assert outputs.shape == (2, 32, 32, 12)  # main logits, then decoder levels 2 and 3
    np.testing.assert_allclose(outputs[..., :4], np.asarray(logits_view(model)(x)), atol=1e-6)
    heads = {layer.name for layer in view.layers} - {layer.name for layer in model.layers}
    assert heads == {f"deep_supervision{level}{part}" for level in (2, 3) for part in ("", "_up")} | {
        "deep_supervision"
    }
    with pytest.raises(ValueError, match=r"levels must lie in 2\.\.3"):
        deep_supervision_view(model, levels=(1,))


def test_deeply_supervised_loss_weights_each_head_and_metrics_score_the_main_one():
    rng = np.random.default_rng(0)
    truth = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (2, 8, 8))]
    good, bad = truth * 20.0, (1 - truth) * 20.0  # logits: right with confidence, wrong with confidence
    plain = keras.losses.categorical_crossentropy

    def ce(y, z):
        return keras.ops.mean(plain(y, z, from_logits=True))

    loss = deeply_supervised(ce, weights=(0.5, 0.3, 0.2))
    assert float(loss(truth, np.concatenate([good, good, good], -1))) < 1e-6
    only_main_wrong = float(loss(truth, np.concatenate([bad, good, good], -1)))
    only_last_wrong = float(loss(truth, np.concatenate([good, good, bad], -1)))
    np.testing.assert_allclose(only_main_wrong / only_last_wrong, 0.5 / 0.2, rtol=1e-4)
    dice = training_metrics()[0]
    dice.update_state(truth, np.concatenate([good, bad, bad], -1))
    assert float(dice.result()) == pytest.approx(1.0)  # the heads' channels are not scored


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_softmax_is_float32_under_mixed_precision(policy):
    model = with_precision(build_attention_unet(TINY), policy)
    assert model.get_layer("encoder1_conv1").compute_dtype != "float32"
    assert np.asarray(model(np.zeros((1, 32, 32, 2), np.float32))).dtype == np.float32
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone


# /proc/cpuinfo lines of the three CPU kinds these numbers were measured on (flags shortened).
XEON_AMX = "flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC_AVX512 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16\n"
EPYC_AVX2 = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma\nbugs\t\t: amx_bf16_is_not_a_flag_here\n"


def test_training_precision_follows_the_hardware():
    assert cpu_bf16_flags(XEON_AMX) == ("amx_bf16", "avx512_bf16")
    assert cpu_bf16_flags(EPYC_AVX512) == ("avx512_bf16",)
    assert cpu_bf16_flags(EPYC_AVX2) == ()  # only the flags line counts
    assert choose_training_precision(gpu=False, bf16_flags=("avx512_bf16",)) == "mixed_bfloat16"
    assert choose_training_precision(gpu=False, bf16_flags=()) == "float32"
    assert choose_training_precision(gpu=False, bf16_flags=None) == "float32"  # unknown CPU: the safe choice
    assert choose_training_precision(gpu=True, bf16_flags=()) == "mixed_float16"  # the seed's, on a GPU
    assert fast_training_precision() in PRECISIONS


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_training_lowers_the_loss_under_mixed_precision(phantom_data_dir, tmp_path, precision):
    """Each policy `--precision auto` may choose trains, not only float32 (below)."""
    dirs = io.list_cases(phantom_data_dir)
    config = replace(TINY_TRAIN, epochs=3, learning_rate=3e-3, loss="ce_dice", precision=precision, select="last")
    result = train(config, dirs[:4], dirs[4:5], tmp_path / "m.keras", cache_dir=tmp_path / "cache", verbose=0)
    losses = result.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


@pytest.mark.slow
def test_training_lowers_the_loss_and_resumes(phantom_data_dir, tmp_path):
    dirs = io.list_cases(phantom_data_dir)
    config = replace(TINY_TRAIN, epochs=3, learning_rate=3e-3, loss="ce_dice", augment="flips")
    out = tmp_path / "m.keras"
    last = replace(config, select="last")
    result = train(last, dirs[:4], dirs[4:5], out, cache_dir=tmp_path / "cache", verbose=0)
    losses = result.history["loss"]
    assert losses[-1] < losses[0]
    assert out.exists() and json.loads(out.with_suffix(".json").read_text())["epochs_run"] == 3
    assert out.with_suffix(".best.keras").exists()  # the best-validation epoch is kept beside it
    for path in (out, out.with_suffix(".best.keras")):  # trained on logits, saved with the softmax
        probs = load_model(path).predict_on_batch(np.random.default_rng(0).normal(size=(2, 32, 32, 2)))
        assert probs.shape == (2, 32, 32, 4) and np.allclose(probs.sum(-1), 1.0, atol=1e-3)
    log_rows = out.with_suffix(".log.csv").read_text().strip().splitlines()
    assert len(log_rows) == 1 + 3 and "val_dice_regions" in log_rows[0]

    # A real kill: a child process trains and SIGKILLs itself right after its 2nd epoch.
    killed = tmp_path / "k.keras"
    script = KILLED_RUN.format(data=str(phantom_data_dir), out=str(killed), cache=str(tmp_path / "cache"))
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    resumed = train(
        replace(config, epochs=4),
        dirs[:4],
        dirs[4:5],
        killed,
        cache_dir=tmp_path / "cache",
        resume=True,
        verbose=0,
    )
    assert resumed.epochs_run == 2  # only epochs 3 and 4 ran
    assert read_history(killed.with_suffix(".log.csv"))["epoch"] == [0, 1, 2, 3]
    # Resuming a finished run (Keras deleted its backup) starts afresh, with a fresh log.
    again = train(
        replace(config, epochs=1), dirs[:4], dirs[4:5], killed, cache_dir=tmp_path / "cache", resume=True, verbose=0
    )
    assert again.epochs_run == 1
    assert read_history(killed.with_suffix(".log.csv"))["epoch"] == [0]


def test_training_without_validation_patients_keeps_the_last_epoch(phantom_data_dir, tmp_path):
    dirs = io.list_cases(phantom_data_dir)
    with pytest.raises(InputError, match="--select last"):  # nothing to pick the best epoch on
        train(TINY_TRAIN, dirs[:2], [], tmp_path / "best.keras", cache_dir=None, verbose=0)
    out = tmp_path / "m.keras"
    train(replace(TINY_TRAIN, select="last"), dirs[:2], [], out, cache_dir=None, verbose=0)
    assert load_model(out).output_shape == (None, 32, 32, 4)
    assert not out.with_suffix(".best.keras").exists()
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["val_cases"] == [] and info["epochs_run"] == 1
    # Each training patient's FLAIR fingerprint, so a renamed copy is still recognised as seen.
    assert info["train_fingerprints"] == {d.name: io.load_case(d).fingerprint for d in dirs[:2]}
    assert len(set(info["train_fingerprints"].values())) == 2 and info["val_fingerprints"] == {}
    history = read_history(out.with_suffix(".log.csv"))  # Keras logs NA for validation: left out
    assert "loss" in history and "dice_wt" in history and not any(k.startswith("val_") for k in history)


@pytest.mark.slow
def test_training_with_deep_supervision_saves_the_plain_network(phantom_data_dir, tmp_path):
    dirs = io.list_cases(phantom_data_dir)
    config = replace(TINY_TRAIN, epochs=2, loss="ce_dice", deep_supervision=True, learning_rate=3e-3)
    out = tmp_path / "ds.keras"
    result = train(config, dirs[:4], dirs[4:5], out, cache_dir=tmp_path / "cache", verbose=0)
    assert result.history["loss"][1] < result.history["loss"][0]
    network = load_model(out)  # the best epoch, rewritten from the checkpoint of the training view
    plain = build_attention_unet(config.model)
    assert [layer.name for layer in network.layers] == [layer.name for layer in plain.layers]
    assert network.output_shape == (None, 32, 32, 4)
    assert "val_dice_regions" in read_history(out.with_suffix(".log.csv"))
    assert json.loads(out.with_suffix(".json").read_text())["train"]["deep_supervision"] is True


KILLED_RUN = """
import os, signal, keras
from pathlib import Path
from neuroinsight import io, training
from neuroinsight.preprocessing import PreprocessConfig

class KillAfterSecondEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

original_fit = keras.Model.fit
def fit(self, *args, callbacks=None, **kwargs):
    return original_fit(self, *args, callbacks=[*callbacks, KillAfterSecondEpoch()], **kwargs)
keras.Model.fit = fit

dirs = io.list_cases("{data}")
config = training.TrainConfig(
    preprocess=PreprocessConfig(image_size=32, slice_range=(10, 30)), filters=(4, 8, 16), bottleneck=32,
    epochs=4, batch_size=8, learning_rate=3e-3, loss="ce_dice", augment="flips",
)
training.train(config, dirs[:4], dirs[4:5], Path("{out}"), cache_dir=Path("{cache}"), verbose=0)
"""


def test_cross_entropy_keeps_its_gradient_when_the_softmax_saturates():
    from neuroinsight.training import LOSS_FUNCTIONS, cross_entropy

    truth = np.eye(4, dtype=np.float32)[[[[1]]]]  # one pixel of class 1
    logits = np.array([[[[40.0, 0.0, 0.0, 0.0]]]], np.float32)  # P(class 1) ~ 4e-18
    # Clipping probabilities at 1e-7 (Keras on softmax outputs under JAX) would give 16.1 and no gradient.
    assert float(cross_entropy(truth, logits)) == pytest.approx(40.0, rel=1e-4)
    for name, loss in LOSS_FUNCTIONS.items():  # every loss takes logits
        assert float(loss(truth, logits)) >= 40.0, name


def test_region_dice_loss_scores_the_brats_regions():
    from neuroinsight.training import LOSS_FUNCTIONS, LOSSES, region_dice_loss

    classes = np.zeros((1, 4, 4), np.int64)
    classes[0, 0, :2] = 1  # necrosis
    classes[0, 1, :2] = 3  # enhancing
    classes[0, 2] = 2  # edema
    truth = np.eye(4, dtype=np.float32)[classes]
    assert float(region_dice_loss(truth, truth, smooth=0.0)) == pytest.approx(0.0, abs=1e-6)
    # Necrosis and enhancing swapped: WT and TC are still perfect, ET has no overlap at all.
    swapped = np.eye(4, dtype=np.float32)[np.select([classes == 1, classes == 3], [3, 1], classes)]
    assert float(region_dice_loss(truth, swapped, smooth=0.0)) == pytest.approx(1 / 3, abs=1e-6)
    assert set(LOSS_FUNCTIONS) == set(LOSSES)  # every accepted name has a loss


def test_weighted_cross_entropy_is_a_weighted_mean_over_pixels():
    from neuroinsight.training import cross_entropy, weighted_cross_entropy

    rng = np.random.default_rng(0)
    truth = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(2, 8, 8))]
    logits = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    # Equal weights are the plain cross-entropy, whatever their value.
    for w in (1.0, 3.0):
        plain = float(cross_entropy(truth, logits))
        assert float(weighted_cross_entropy(truth, logits, (w,) * 4)) == pytest.approx(plain, rel=1e-5)
    # One pixel of each of two classes: the weighted mean moves towards the heavier class's loss.
    two = np.eye(4, dtype=np.float32)[[[[0, 3]]]]
    guess = np.array([[[[2.0, 0, 0, 0], [2.0, 0, 0, 0]]]], np.float32)  # right on 0, wrong on 3
    losses = -np.log(np.exp(guess[0, 0]) / np.exp(guess[0, 0]).sum(-1, keepdims=True))[[0, 1], [0, 3]]
    expected = (1.0 * losses[0] + 3.0 * losses[1]) / 4.0
    assert float(weighted_cross_entropy(two, guess, (1.0, 1.0, 1.0, 3.0))) == pytest.approx(expected, rel=1e-5)
