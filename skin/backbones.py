"""The backbone table: every architecture by name, with its own preprocessing.

Like timm's registry, each entry carries what training and serving must agree on:
the `keras.applications` constructor, the matching `preprocess_input`, the input sizes
it accepts, and the convolutional layers Grad-CAM may explain. `build_classifier` puts
the one head this project uses on top, so `train/` and `skin/` build identical models.
"""

from dataclasses import dataclass
from typing import Callable

import keras


@dataclass(frozen=True)
class Backbone:
    name: str
    constructor: Callable[..., keras.Model]
    preprocess_input: Callable
    preprocessing: str  # keras.applications mode: caffe, torch, tf, or none (built in)
    min_size: int
    # Grad-CAM's candidate layers, last first: the first whose map is at least 3x3 at the
    # model's input size is used (InceptionV3's last map is 1x1 below 139 px).
    gradcam_layers: tuple[str, ...]


_apps = keras.applications

BACKBONES = {
    b.name: b
    for b in (
        Backbone("resnet50", _apps.ResNet50, _apps.resnet50.preprocess_input,
                 "caffe", 32, ("conv5_block3_out",)),
        Backbone("densenet121", _apps.DenseNet121, _apps.densenet.preprocess_input,
                 "torch", 32, ("relu",)),
        Backbone("mobilenetv2", _apps.MobileNetV2, _apps.mobilenet_v2.preprocess_input,
                 "tf", 32, ("out_relu",)),
        Backbone("efficientnetb0", _apps.EfficientNetB0, _apps.efficientnet.preprocess_input,
                 "none", 32, ("top_activation",)),
        Backbone("inceptionv3", _apps.InceptionV3, _apps.inception_v3.preprocess_input,
                 "tf", 75, ("mixed10", "mixed7", "mixed2")),
        Backbone("xception", _apps.Xception, _apps.xception.preprocess_input,
                 "tf", 71, ("block14_sepconv2_act",)),
    )
}

HEAD_LAYERS = ("head_pool", "head_dropout", "predictions")


class BackboneError(ValueError):
    """An unknown backbone name, or an input size the backbone cannot take."""


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name.lower()]
    except KeyError:
        raise BackboneError(
            f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}"
        ) from None


def check_input_size(backbone: Backbone, size: int) -> None:
    if size < backbone.min_size:
        raise BackboneError(
            f"{backbone.name} needs an input of at least {backbone.min_size} px, got {size}"
        )


def build_classifier(
    backbone_name: str,
    num_classes: int,
    input_size: int,
    dropout: float = 0.3,
    weights: str | None = None,
) -> keras.Model:
    """Backbone (without its ImageNet top) + global average pooling, dropout, softmax.

    The backbone is built on the classifier's own input tensor, so the result is one flat
    functional model: every backbone layer (the Grad-CAM layer too) is reachable by name.
    `weights` is None (random), "imagenet", or the path of a backbone weights file.
    """
    backbone = get_backbone(backbone_name)
    check_input_size(backbone, input_size)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    features = backbone.constructor(
        include_top=False, weights=weights, input_tensor=inputs
    ).output
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(features)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=f"{backbone.name}_classifier")


def with_features(classifier: keras.Model) -> keras.Model:
    """The classifier with a second output, the pooled features its head reads (sharing
    its weights): the input guard measures how far they lie from the training images'."""
    return keras.Model(classifier.inputs,
                       [classifier.output, classifier.get_layer("head_pool").output])
