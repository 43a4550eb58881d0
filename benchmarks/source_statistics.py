"""How HAM10000's sources differ in what a camera puts into an image, and whether a model
trained without one source reads those differences as a diagnosis.

Per source, on every image at the training size (the serving code's own decode, crop and
resize): the class mix, median colour, saturation, contrast (standard deviation of grey)
and sharpness (variance of the grey image's 4-neighbour Laplacian); how well sharpness
alone separates melanoma from naevus within each source (AUC). With `--card` (a model
trained with `--test-source`), the share of that unseen source's naevi and melanomas the
model calls melanoma, by sharpness quartile of those naevi, as they are and blurred (a
Gaussian of 1 pixel at the training size): a model that learned "sharp means melanoma"
from the other sources calls more sharp naevi melanoma, and fewer once blurred.

    python benchmarks/source_statistics.py [--data DIR] [--size 96] [--card CARD]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from skin.cards import read_card, split_identity  # noqa: E402
from skin.dataset import HAM10000_BESIDE_CHECKOUT, load_dataset  # noqa: E402
from skin.images import read_image  # noqa: E402
from skin.predict import Predictor  # noqa: E402
from skin.preprocessing import center_crop_resize  # noqa: E402


def acquisition_figures(pixels: np.ndarray) -> dict:
    """Colour, saturation, contrast and sharpness of one size x size x 3 uint8 image."""
    rgb = pixels.astype(np.float64)
    grey = rgb.mean(axis=2)
    laplacian = (4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1]
                 - grey[1:-1, :-2] - grey[1:-1, 2:])
    saturation = (rgb.max(axis=2) - rgb.min(axis=2)) / np.maximum(rgb.max(axis=2), 1)
    return {"red": rgb[..., 0].mean(), "green": rgb[..., 1].mean(), "blue": rgb[..., 2].mean(),
            "saturation": saturation.mean(), "contrast": grey.std(),
            "sharpness": laplacian.var()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(HAM10000_BESIDE_CHECKOUT))
    p.add_argument("--size", type=int, default=96, help="the training size, in pixels")
    p.add_argument("--card", help="a model trained with one source held out")
    args = p.parse_args()

    table = load_dataset(args.data).table
    images = [np.asarray(center_crop_resize(read_image(path), args.size))
              for path in table["path"]]
    figures = pd.DataFrame([acquisition_figures(image) for image in images], index=table.index)
    figures[["source", "label"]] = table[["source", "label"]]

    print(f"Every HAM10000 image at {args.size} px, by source: images per class")
    print(pd.crosstab(figures["source"], figures["label"]).to_string())
    print("\nMedians (colour 0-255; saturation 0-1; contrast: grey standard deviation; "
          "sharpness: Laplacian variance), and sharpness as a melanoma-vs-naevus score (AUC):")
    medians = figures.groupby("source")[
        ["red", "green", "blue", "saturation", "contrast", "sharpness"]].median()
    for source, part in figures.groupby("source"):
        both = part[part["label"].isin(["mel", "nv"])]
        medians.loc[source, "sharpness AUC mel/nv"] = roc_auc_score(
            both["label"] == "mel", both["sharpness"])
        for label in ("mel", "nv"):
            medians.loc[source, f"sharpness {label}"] = part.loc[
                part["label"] == label, "sharpness"].median()
    print(medians.round(3).to_string())

    if args.card:
        card = read_card(args.card)
        _, _, source = split_identity(card)
        unseen = figures[(figures["source"] == source) & figures["label"].isin(["mel", "nv"])]
        predictor = Predictor.from_card(card)
        unseen_images = [images[table.index.get_loc(i)] for i in unseen.index]
        naevi = unseen["label"] == "nv"
        edges = np.quantile(unseen.loc[naevi, "sharpness"], [0, 0.25, 0.5, 0.75, 1])
        quartile = np.clip(np.searchsorted(edges, unseen["sharpness"], side="right") - 1, 0, 3)
        print(f"\n{card['name']} on {source} (never seen): share called melanoma, by "
              f"sharpness quartile of {source}'s naevi (edges {np.round(edges, 1).tolist()})")
        blurred = [np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(1)))
                   for image in unseen_images]
        for how, shown in (("as they are", unseen_images), ("blurred", blurred)):
            probs = predictor.batch_probabilities(shown)
            called_melanoma = probs.argmax(axis=1) == card["classes"].index("mel")
            for label, name in (("nv", "naevi"), ("mel", "melanomas")):
                rows = (unseen["label"] == label).to_numpy()
                shares = [f"{called_melanoma[rows & (quartile == q)].mean():.2f} "
                          f"(n={(rows & (quartile == q)).sum()})" for q in range(4)]
                print(f"  {name}, {how}: all {called_melanoma[rows].mean():.2f}; by quartile "
                      + ", ".join(shares))


if __name__ == "__main__":
    main()
