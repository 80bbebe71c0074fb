"""The seed's 2-D Attention-UNet.

Attention gates follow Oktay et al. 2018, "Attention U-Net: Learning Where to
Look for the Pancreas", arXiv:1804.03999: the additive gate
``alpha = sigmoid(psi(relu(W_x * x + W_g * g)))`` with 1x1 convolutions, applied
to every skip connection before it is concatenated in the decoder.

How the network maps onto the seed's architecture table:

=====================  =====================================================
seed table             here
=====================  =====================================================
Input 128x128x2        ``input_shape=(128, 128, 2)`` (T1ce, FLAIR); 4 channels
                       for the four-modality variant
Encoder 32 -> 64 -> 128  :func:`conv_block` (two 3x3 Conv2D + ReLU) then 2x2 max pool
Bottleneck 256         :func:`conv_block` with 256 filters
Attention gates        :class:`AttentionGate` with 128, 64, 32 intermediate channels
Decoder                2x upsampling, 3x3 Conv2D + ReLU, concatenation with the
                       gated skip, :func:`conv_block`
Output                 1x1 Conv2D + softmax over 4 classes, float32 under any
                       precision policy
=====================  =====================================================

Beyond the seed, ``ModelConfig.norm`` can put a normalization layer between each 3x3
convolution and its ReLU: ``batch`` (Ioffe and Szegedy 2015) or ``instance`` (Ulyanov et
al. 2016, nnU-Net's choice: per slice and channel, so it does not depend on which slices
share a batch). The seed's network has none (``norm="none"``, the default).

Loss (categorical cross-entropy), optimiser (Adam 1e-3) and mixed precision are
set in :mod:`neuroinsight.training`; this module builds the network and the views of it
that training uses (:func:`logits_view`, :func:`deep_supervision_view`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
from keras import layers, ops

GATE_PREFIX = "attention_gate"
#: Normalization layer class and arguments per ``ModelConfig.norm`` beyond the seed's ``none``:
#: ``conv_relu`` builds from this table and ``model_config_of`` reads it back.
NORM_LAYERS: dict[str, tuple[type[layers.Layer], dict]] = {
    "batch": (layers.BatchNormalization, {}),
    "instance": (layers.GroupNormalization, {"groups": -1}),  # one group per channel
}
NORMS = ("none", *NORM_LAYERS)


@keras.saving.register_keras_serializable(package="neuroinsight")
class AttentionGate(layers.Layer):
    """Additive attention gate: weights a skip connection by where the coarser features look.

    ``alpha = sigmoid(psi(relu(theta(skip) + phi(gating))))``, ``output = skip * alpha``,
    with ``theta``, ``phi`` 1x1 convolutions to ``inter_channels`` and ``psi`` a 1x1
    convolution to one channel (Oktay et al. 2018, arXiv:1804.03999, Fig. 2).

    Args:
        inter_channels: Channels of the intermediate (theta/phi) space.

    Call args:
        inputs: ``[skip, gating]``: ``skip (B, H, W, Cs)`` from the encoder and
            ``gating (B, H, W, Cg)`` from the decoder, already upsampled to ``(H, W)``.

    Returns:
        ``[gated_skip (B, H, W, Cs), alpha (B, H, W, 1)]`` with ``alpha`` in ``[0, 1]``.
    """

    def __init__(self, inter_channels: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inter_channels = int(inter_channels)
        # The gate's own policy, not the global one: a model saved under mixed precision and
        # loaded elsewhere must not mix bfloat16 skips with float32 coefficients.
        policy = self.dtype_policy
        self.theta_skip = layers.Conv2D(self.inter_channels, 1, use_bias=False, dtype=policy, name="theta_skip")
        self.phi_gating = layers.Conv2D(self.inter_channels, 1, dtype=policy, name="phi_gating")
        self.psi = layers.Conv2D(1, 1, dtype=policy, name="psi")

    def build(self, input_shape: Sequence[tuple]) -> None:
        skip_shape, gating_shape = input_shape
        self.theta_skip.build(skip_shape)
        self.phi_gating.build(gating_shape)
        self.psi.build((*skip_shape[:-1], self.inter_channels))

    def call(self, inputs):
        skip, gating = inputs
        joint = ops.relu(self.theta_skip(skip) + self.phi_gating(gating))
        alpha = ops.sigmoid(self.psi(joint))
        return [skip * alpha, alpha]

    def compute_output_shape(self, input_shape):
        skip_shape, _ = input_shape
        return [tuple(skip_shape), (*skip_shape[:-1], 1)]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"inter_channels": self.inter_channels})
        return config


@dataclass(frozen=True)
class ModelConfig:
    """Architecture settings; saved beside the weights so a model can be rebuilt.

    Attributes:
        input_channels: 2 (T1ce + FLAIR, the seed) or 4 (T1, T1ce, T2, FLAIR).
        image_size: Side of the square input.
        n_classes: Output classes (background, NCR/NET, edema, enhancing).
        filters: Encoder filters per level (seed: 32, 64, 128).
        bottleneck: Bottleneck filters (seed: 256).
        norm: Normalization after each 3x3 convolution, one of ``NORMS`` (seed: ``none``).
    """

    input_channels: int = 2
    image_size: int = 128
    n_classes: int = 4
    filters: tuple[int, ...] = (32, 64, 128)
    bottleneck: int = 256
    norm: str = "none"

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["filters"] = tuple(values["filters"])
        return cls(**values)


def conv_relu(x, filters: int, name: str, norm: str = "none"):
    """3x3 ``Conv2D`` + ReLU, with ``norm`` between them unless it is ``"none"`` (the seed)."""
    plain = norm == "none"
    # With a normalization its own shift replaces the convolution's bias.
    x = layers.Conv2D(
        filters,
        3,
        padding="same",
        activation="relu" if plain else None,
        use_bias=plain,
        kernel_initializer="he_normal",
        name=name,
    )(x)
    if plain:
        return x
    layer_class, kwargs = NORM_LAYERS[norm]
    x = layer_class(name=f"{name}_norm", **kwargs)(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def conv_block(x, filters: int, name: str, norm: str = "none"):
    """Two :func:`conv_relu` (the seed's encoder/decoder block)."""
    for i in (1, 2):
        x = conv_relu(x, filters, f"{name}_conv{i}", norm)
    return x


def build_attention_unet(config: ModelConfig = ModelConfig(), *, dtype_policy: str | None = None) -> keras.Model:
    """Build the Attention-UNet.

    Args:
        config: Architecture settings (defaults are the seed's).
        dtype_policy: ``float32``, ``mixed_bfloat16`` or ``mixed_float16``; None keeps the
            global policy. The softmax output is float32 in every case.

    Returns:
        A ``keras.Model`` mapping ``(B, S, S, C)`` to class probabilities ``(B, S, S, K)``.
    """
    if config.norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {config.norm!r}.")
    previous = keras.config.dtype_policy()
    if dtype_policy is not None:
        keras.config.set_dtype_policy(dtype_policy)
    try:
        inputs = keras.Input((config.image_size, config.image_size, config.input_channels), name="slices")
        x = inputs
        skips = []
        for level, filters in enumerate(config.filters, start=1):
            x = conv_block(x, filters, f"encoder{level}", config.norm)
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
        x = conv_block(x, config.bottleneck, "bottleneck", config.norm)
        for level in range(len(config.filters), 0, -1):
            filters = config.filters[level - 1]
            x = layers.UpSampling2D(2, name=f"up{level}")(x)
            x = conv_relu(x, filters, f"up{level}_conv", config.norm)
            gated, _ = AttentionGate(filters, name=f"{GATE_PREFIX}{level}")([skips[level - 1], x])
            x = layers.Concatenate(name=f"merge{level}")([x, gated])
            x = conv_block(x, filters, f"decoder{level}", config.norm)
        logits = layers.Conv2D(config.n_classes, 1, name="logits")(x)
        outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
        return keras.Model(inputs, outputs, name="attention_unet")
    finally:
        keras.config.set_dtype_policy(previous)


def with_attention_outputs(model: keras.Model) -> keras.Model:
    """A model sharing ``model``'s weights that returns ``[probabilities, alpha_1, ..., alpha_L]``.

    ``alpha_l`` is the gate at encoder level ``l`` (1 = full resolution), shape ``(B, H_l, W_l, 1)``.
    """
    gates = sorted((layer for layer in model.layers if isinstance(layer, AttentionGate)), key=lambda g: g.name)
    return keras.Model(model.input, [model.output, *[gate.output[1] for gate in gates]])


def logits_view(model: keras.Model) -> keras.Model:
    """A model sharing ``model``'s weights that returns the pre-softmax logits ``(B, S, S, K)``.

    Training uses it so that the cross-entropy is computed from logits
    (:func:`neuroinsight.training.cross_entropy` says why); the saved network keeps its softmax.
    """
    return keras.Model(model.input, model.get_layer("logits").output, name=f"{model.name}_logits")


def deep_supervision_view(model: keras.Model, levels: Sequence[int] = (2, 3)) -> keras.Model:
    """A training view: the logits and auxiliary logits of lower decoder levels, side by side.

    Deep supervision (Lee et al. 2015, "Deeply-Supervised Nets"; the Attention U-Net of Oktay
    et al. 2018 and nnU-Net train with it): a 1x1 convolution on decoder level ``l`` (1 = full
    resolution) predicts the classes at 1/2^(l-1) of the image size, upsampled bilinearly to
    the full size. The heads are new layers outside ``model``: they give the lower decoder
    levels a gradient of their own during training and are left out when the network is saved,
    so inference is unchanged.

    Returns:
        A model sharing ``model``'s weights, mapping ``(B, S, S, C)`` to ``(B, S, S, K * (1 +
        len(levels)))``: the main logits first, then one head per level.
    """
    n_levels = sum(1 for layer in model.layers if isinstance(layer, AttentionGate))
    if not all(2 <= level <= n_levels for level in levels):
        raise ValueError(f"deep supervision levels must lie in 2..{n_levels}, got {tuple(levels)}.")
    logits = model.get_layer("logits")
    policy = logits.dtype_policy  # the heads compute in the network's precision
    n_classes = logits.filters
    heads = [logits.output]
    for level in levels:
        name = f"deep_supervision{level}"
        x = layers.Conv2D(n_classes, 1, dtype=policy, name=name)(_block_output(model, level))
        up = layers.UpSampling2D(2 ** (level - 1), interpolation="bilinear", dtype=policy, name=f"{name}_up")
        heads.append(up(x))
    outputs = layers.Concatenate(dtype=policy, name="deep_supervision")(heads)
    return keras.Model(model.input, outputs, name=f"{model.name}_deep_supervision")


def _block_output(model: keras.Model, level: int):
    """The output of decoder level ``level``'s :func:`conv_block` (after its last ReLU)."""
    name = f"decoder{level}_conv2"
    names = {layer.name for layer in model.layers}
    return model.get_layer(f"{name}_relu" if f"{name}_relu" in names else name).output


def model_config_of(model: keras.Model) -> ModelConfig:
    """Read the architecture settings back from a built model."""
    _, size, _, channels = model.input_shape
    filters = tuple(
        layer.filters for layer in model.layers if layer.name.startswith("encoder") and layer.name.endswith("_conv1")
    )
    bottleneck = model.get_layer("bottleneck_conv1").filters
    layer = next((layer for layer in model.layers if layer.name == "bottleneck_conv1_norm"), None)
    norm = next((norm for norm, (cls, _) in NORM_LAYERS.items() if isinstance(layer, cls)), "none")
    return ModelConfig(int(channels), int(size), int(model.output_shape[-1]), filters, int(bottleneck), norm)


def with_precision(model: keras.Model, dtype_policy: str) -> keras.Model:
    """The same network and weights rebuilt under another precision policy."""
    clone = build_attention_unet(model_config_of(model), dtype_policy=dtype_policy)
    clone.set_weights(model.get_weights())
    return clone


def load_model(path: str | Path) -> keras.Model:
    """Load a saved ``.keras`` Attention-UNet with ``safe_mode=True`` (no arbitrary code)."""
    return keras.saving.load_model(str(path), safe_mode=True, compile=False)


def layer_table(model: keras.Model) -> list[dict[str, object]]:
    """One row per layer: name, type, output shape and parameter count (for teaching views)."""
    rows = []
    for layer in model.layers:
        output = layer.output
        shapes = [tuple(o.shape) for o in output] if isinstance(output, list | tuple) else [tuple(output.shape)]
        rows.append(
            {
                "layer": layer.name,
                "type": layer.__class__.__name__,
                "output shape": " + ".join(str(s[1:]) for s in shapes),
                "parameters": int(layer.count_params()),
            }
        )
    return rows
