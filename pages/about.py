"""About: the project, how each model was trained, the data, publishing weights."""

import pandas as pd
import streamlit as st

from skin.cards import class_balance, init_label, training, training_config
from skin.fetch import describe
from ui.common import disclaimer, registry

st.title("Skin-lesion classifier and backbone comparator")
disclaimer()
st.markdown(
    """
This open-source project trains and compares CNN backbones (ResNet50, DenseNet121,
MobileNetV2, EfficientNetB0, InceptionV3, Xception) on dermoscopic images of the seven
HAM10000 classes. Every figure in this app comes from a model's card, written by the
training run that produced the model, on a test split that keeps every image of a lesion
on one side (image-level splits inflate results with near-duplicate images).
"""
)

st.header("The models")
found = registry()
if not found.cards:
    st.info("No model is registered yet: train one with `python -m train` (see below).")
else:
    rows = []
    for name, card in found.cards.items():
        config = training_config(card)
        rows.append({
            "model": name, "backbone": card["backbone"], "initialisation": init_label(card),
            "input px": card["input_size"], "classes": ", ".join(card["classes"]),
            "loss": config.get("loss"), "class balance": class_balance(card),
            "distilled from": ", ".join(t["name"] for t in config.get("teachers", [])),
            "epochs": training(card).get("epochs_run"),
            "data": training(card).get("data_layout"),
            "weights": describe(card["source"]),
        })
    st.dataframe(pd.DataFrame(rows).set_index("model"), width="stretch")
    st.caption("Initialisation 'from scratch' means random weights (Keras's ImageNet "
               "weights could not be downloaded where these models were trained); 'ImageNet "
               "(MobileNetV2, 8-bit, Google, Apache-2.0)': Google's ImageNet MobileNetV2, "
               "imported from its 8-bit TensorFlow Lite file and fine-tuned. Compare the two "
               "kinds knowing which is which. Class balance 'weights': the "
               "loss weighs each class by its rarity; 'sampling': every batch draws each "
               "class equally often. 'Distilled from': the models whose probabilities it "
               "was trained towards, as well as the labels.")

st.header("What the decision means")
st.markdown(
    """
Every model (and the ensemble) leads with a **decision** on the risk of malignancy, not
with its first class: P(malignant), the sum of the calibrated probabilities of melanoma,
basal cell carcinoma and actinic keratosis / intraepithelial carcinoma, is compared with a
threshold chosen on the validation split so that 95% of the malignant validation lesions
are referred. At or above it: **refer** (have it examined); below it but unsure:
**inconclusive**; otherwise **low risk**. High sensitivity costs specificity: many benign
lesions are referred too, and at a clinic the models never saw far more (the one model
measured that way kept its sensitivity but referred 89% of benign lesions; the README
gives the figures). An **input guard** flags images
whose features lie far from the training images' (5% of validation lesions are flagged):
a face, a cat or a screenshot gets "this does not look like a dermoscopic image".
"""
)
record = found.ensemble_record
if record and record.get("referral") and record["referral"].get("test"):
    test = record["referral"]["test"]
    st.caption(f"The shipped ensemble refers at P(malignant) >= "
               f"{record['referral']['threshold']:.2f}: on its held-out test lesions it "
               f"referred {test['sensitivity']:.1%} of the {test['n_malignant']} malignant "
               f"ones and left {test['specificity']:.1%} of the {test['n_benign']} benign "
               "ones unreferred (ensemble.json in assets/models).")

st.header("Data")
st.markdown(
    """
HAM10000: Tschandl, P., Rosendahl, C. & Kittler, H. *The HAM10000 dataset, a large
collection of multi-source dermatoscopic images of common pigmented skin lesions.*
Sci. Data 5, 180161 (2018), doi:10.1038/sdata.2018.161. Licence CC BY-NC 4.0: research and
demonstration use only. No image of the dataset is part of this repository.

ImageNet-initialised models start from Google's ImageNet MobileNetV2 (width 1.0, 224 px),
the 8-bit TensorFlow Lite file `tf2_mobilenet_v2_1.0_224_ptq.tflite` of the public
repository google-coral/test_data (Apache-2.0), imported into Keras by `train/imagenet.py`;
each such card names the file and its sha256. ImageNet's own terms are for non-commercial
research.
"""
)

st.header("Train your own model and publish it")
st.markdown(
    """
1. `python -m train --data DIR --backbone NAME --img-size N --epochs N --init none
   --out runs/NAME --split runs/split.csv` (DIR: HAM10000 layout, a CSV of path,label,
   or one folder per class). The run writes `NAME.json` (the card) and its weights.
2. To serve it, copy both into `assets/models/`, or point `SKIN_MODEL_DIRS` at the folder.
3. To host large weights on Google Drive: upload the weights file, share it ("anyone with
   the link"), and put `"source": {"gdrive": "FILE_ID_OR_LINK", "sha256": "..."}` in the
   card, or, on Streamlit Community Cloud, in the app's secrets:

   ```toml
   [models.NAME]
   gdrive = "FILE_ID_OR_LINK"   # or url = "https://..."
   sha256 = "..."               # only if the weights differ from the card's
   ```

   The app downloads it (Drive files with gdown) on first use and checks the sha256.
"""
)
