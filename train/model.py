"""The classifier to train: initialisation, batch-norm momentum, freezing and unfreezing."""

from pathlib import Path

import keras

from skin.backbones import HEAD_LAYERS, build_classifier
from skin.cards import CardError, build_model, read_card
from skin.fetch import FetchError, fetch
from train.imagenet import InitError, Provenance, imagenet_classifier


def create_model(backbone: str, classes, input_size: int, init: str, dropout: float, *,
                 init_weights: str | None = None,
                 log=print) -> tuple[keras.Model, str, Provenance | None]:
    """A new classifier, a description of its initialisation for the card, and where
    its ImageNet weights came from (None for any other initialisation).

    init: "none" (random), "imagenet" (Keras's download, or the local file
    `init_weights`, see train.imagenet), a backbone weights file (e.g. Keras's
    *_notop.h5, downloaded by hand), or a model card of this project (or its folder):
    transfer from that model to these classes and input size.
    """
    if init_weights and init != "imagenet":
        raise InitError("--init-weights is the local file of --init imagenet; add --init imagenet")
    if init == "none":
        return build_classifier(backbone, len(classes), input_size, dropout), "scratch", None
    if init == "imagenet":
        model, provenance = imagenet_classifier(backbone, len(classes), input_size, dropout,
                                                local_file=init_weights, log=log)
        return model, "imagenet", provenance
    path = Path(init)
    if path.is_dir() or path.suffix == ".json":
        return (*_transfer(path, backbone, classes, input_size, dropout), None)
    if path.is_file():
        try:
            model = build_classifier(backbone, len(classes), input_size, dropout, weights=str(path))
        except (ValueError, OSError) as e:
            raise InitError(f"cannot load backbone weights from {path} into {backbone}: {e}") from None
        return model, f"weights file {path.name}", None
    raise InitError(f"--init {init!r}: expected none, imagenet, a weights file, or a model card")


def _transfer(card_path, backbone, classes, input_size, dropout):
    try:
        card = read_card(card_path)
        source = build_model(card)
        source.load_weights(fetch(card))
    except (CardError, FetchError, OSError, ValueError) as e:
        raise InitError(f"cannot transfer from {card_path}: {e}") from None
    if card["backbone"] != backbone:
        raise InitError(f"{card_path} is a {card['backbone']} model; --backbone is {backbone}")
    model = build_classifier(backbone, len(classes), input_size, dropout)
    same_head = list(card["classes"]) == list(classes)
    for layer in model.layers:
        if layer.weights and (same_head or layer.name not in HEAD_LAYERS):
            layer.set_weights(source.get_layer(layer.name).get_weights())
    return model, f"transfer from {card['name']}"


def set_batchnorm_momentum(model: keras.Model, momentum: float) -> None:
    """keras.applications uses 0.99 or 0.999; from scratch, 0.999 makes the moving
    statistics lag the weights for thousands of steps and inference collapses onto one
    class (../shared/notes/training-from-scratch.md)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def backbone_layers(model: keras.Model) -> list:
    """The backbone's layers that hold weights, input to output."""
    return [layer for layer in model.layers if layer.weights and layer.name not in HEAD_LAYERS]


def set_trainable(model: keras.Model, last_n: int, train_batchnorm: bool) -> None:
    """Train the head and the last `last_n` weighted backbone layers; freeze the rest.

    With pretrained weights, batch-norm layers stay frozen (in inference mode) as Keras's
    fine-tuning guide advises; from scratch they train with the rest.
    """
    layers = backbone_layers(model)
    first_trainable = max(len(layers) - last_n, 0)
    for i, layer in enumerate(layers):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= first_trainable and (train_batchnorm or not is_bn)
    for name in HEAD_LAYERS:
        model.get_layer(name).trainable = True
