import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from skin.dataset import HAM10000_BESIDE_CHECKOUT as HAM10000  # noqa: E402

# Tests that use these fixtures train a model, start a server or a browser, or read the
# real HAM10000 images: they are marked slow, and `pytest -m "not slow"` runs the rest.
SLOW_FIXTURES = {"tiny_models", "ham10000", "app_url", "browser", "trained"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)

# Colours the tiny datasets are drawn in: one per class, so a model can learn them.
CLASS_COLOURS = {"akiec": (200, 40, 40), "bcc": (40, 200, 40), "nv": (40, 40, 200)}


def write_image(path: Path, colour, size=(40, 30), seed=0) -> Path:
    """A small noisy image of one colour (200x150-like 4:3 aspect by default)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def make_ham_layout(root: Path, lesions_per_class=6, images_per_lesion=2) -> Path:
    """A HAM10000-shaped folder: metadata.csv + images/, several images per lesion."""
    rows = ["image_id,lesion_id,dx,dx_type,age,sex,localization,dataset"]
    n = 0
    for dx, colour in CLASS_COLOURS.items():
        for lesion in range(lesions_per_class):
            for _ in range(images_per_lesion):
                image_id = f"ISIC_{n:07d}"
                write_image(root / "images" / f"{image_id}.jpg", colour, seed=n)
                rows.append(f"{image_id},HAM_{dx}_{lesion},{dx},histo,50,male,back,test")
                n += 1
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def make_class_folders(root: Path, per_class=8) -> Path:
    for dx, colour in CLASS_COLOURS.items():
        for i in range(per_class):
            write_image(root / dx / f"{dx}_{i}.png", colour, seed=i)
    return root


def make_csv_listing(root: Path, per_class=8) -> Path:
    lines = ["path,label,group"]
    for dx, colour in CLASS_COLOURS.items():
        for i in range(per_class):
            write_image(root / "img" / f"{dx}_{i}.png", colour, seed=i)
            lines.append(f"img/{dx}_{i}.png,{dx},{dx}-lesion-{i // 2}")
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    return root / "list.csv"


@pytest.fixture
def ham_layout(tmp_path):
    return make_ham_layout(tmp_path / "ham")


@pytest.fixture
def class_folders(tmp_path):
    return make_class_folders(tmp_path / "folders")


@pytest.fixture
def csv_listing(tmp_path):
    return make_csv_listing(tmp_path / "csvdata")


@pytest.fixture(scope="session")
def ham10000():
    if not (HAM10000 / "metadata.csv").is_file():
        pytest.skip(f"HAM10000 is not at {HAM10000}; the integration tests need it")
    return HAM10000


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Two tiny models trained by `python -m train` (32 px, one epoch, float16 weights;
    the EfficientNetB0 with Shades of Gray colour constancy), in one folder of cards: what
    SKIN_MODEL_DIRS points at in the serving tests."""
    from train.__main__ import main

    root = tmp_path_factory.mktemp("tiny-models")
    listing = make_csv_listing(root / "data", per_class=10)
    models = root / "models"
    for backbone in ("mobilenetv2", "efficientnetb0"):
        out = root / backbone
        assert main(["--data", str(listing), "--backbone", backbone, "--img-size", "32",
                     "--epochs", "1", "--batch-size", "8", "--bootstrap", "20",
                     "--init", "none", "--out", str(out), "--split", str(root / "split.csv"),
                     "--weights-dtype", "float16", "--name", f"tiny-{backbone}",
                     "--colour-constancy",
                     "shades_of_gray" if backbone == "efficientnetb0" else "none",
                     "--quiet"]) == 0
        models.mkdir(exist_ok=True)
        for file in out.glob("tiny-*"):
            (models / file.name).write_bytes(file.read_bytes())
    return models
