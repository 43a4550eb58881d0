"""What every page shares: the disclaimer, the cached model loaders, the image input.

Loaders are wrapped in st.cache_resource, so every session of the server shares one copy
of each model; a model loads on first use, with a status box naming it.
"""

import hashlib
import json
import os
from pathlib import Path

import streamlit as st

from skin.decision import DECISION_TEXT, INCONCLUSIVE, LOW_RISK, NOT_DERMOSCOPY, REFER
from skin.images import HEIF_SUFFIXES, HEIF_SUPPORTED, IMAGE_SUFFIXES, InvalidImage, read_image
from skin.cards import init_label, test_evaluation
from skin.registry import ENSEMBLE, LOAD_ERRORS, Registry
from skin.results import with_interval

DISCLAIMER = ("**Research demo, not a medical device.** This output is not a diagnosis and "
              "must not guide any medical decision. See a dermatologist about any lesion "
              "that worries you.")
UPLOAD_TYPES = [suffix.lstrip(".") for suffix in
                IMAGE_SUFFIXES + (HEIF_SUFFIXES if HEIF_SUPPORTED else ())]
DEFAULT_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000" / "images"
PAGE_LOAD_ERRORS = (*LOAD_ERRORS, OSError)
# A lesion photo is a few MB at most; the limit also bounds decompression work. (The
# server's own limit, .streamlit/config.toml, is the labelled zip's: skin.labels.MAX_ZIP_MB.)
IMAGE_UPLOAD_MB = 10


def disclaimer() -> None:
    st.warning(DISCLAIMER, icon="⚕️")


def registry() -> Registry:
    """The registered model cards, where st.secrets may move a card's weights elsewhere:
    [models.NAME] gdrive = "..." or url = "..." (sha256 = "..." too if the weights changed)."""
    return Registry.discover(moved=_secret("models", {}))


def _secret(key, default):
    try:
        return st.secrets.get(key, default)
    except FileNotFoundError:  # no secrets.toml: the normal case locally
        return default


@st.cache_resource(show_spinner=False, max_entries=16)
def _cached_predictor(name: str, card_digest: str, _card: dict):
    from skin.predict import Predictor
    keep_compiled_models_warm()
    # Only the graph the pages call first: TTA traces on its first use (a second or two).
    return Predictor.from_card(_card).warm_up(single=False, tta=False, explain=True)


def keep_compiled_models_warm() -> None:
    """Streamlit calls keras.backend.clear_session() after every script run, to free the
    models a script built. With TensorFlow that also empties the kernel cache, so the next
    run re-creates every kernel of every cached model: 5.0 s for five models' predictions
    and maps on 2 cores, instead of 0.12 s (benchmarks/compare_page.py). It also restarted
    Keras's automatic layer names in every thread, so a model being built for another
    session at that moment got two layers of one name, and Keras refused it (found by
    tests/test_load.py). This app builds models only inside st.cache_resource, after this
    runs, and keeps them for the server's life: there is nothing for that call to free."""
    import keras

    keras.backend.clear_session = _keep_session


def _keep_session(free_memory: bool = True) -> None:
    """keras.backend.clear_session, as the app's server needs it: a no-op."""


def predictor(card: dict):
    """The card's Predictor, loaded once per server; None (with st.error) if it fails.
    A status box shows while it loads and goes once it is ready."""
    # Keyed by the whole card, not only its weights' sha256: a card edited in place (its
    # thresholds, its temperature) must not be served from the old card's Predictor.
    key = hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode()).hexdigest()
    loading = st.empty()
    try:
        with loading.status(f"Loading model {card['name']} …", expanded=False):
            loaded = _cached_predictor(card["name"], key, card)
    except PAGE_LOAD_ERRORS as e:
        loading.error(f"Model {card['name']} is unavailable: {e}")
        return None
    loading.empty()
    return loaded


# The colour of each decision: red to refer, orange when unsure or without a rule, and
# green only for low risk (never for a lesion that is referred).
DECISION_BOX = {REFER: st.error, INCONCLUSIVE: st.warning, LOW_RISK: st.success, None: st.warning}


def decision_box(result):
    """The box for a result's decision: no green for an image the guard flags, whose
    "low risk" the model cannot vouch for."""
    if result.not_dermoscopy and result.decision == LOW_RISK:
        return st.info
    return DECISION_BOX[result.decision]


def show_decision(result, referral: dict | None) -> None:
    """The decision first, in plain words and its colour; the input guard's warning above
    it; what the operating point means below it."""
    if result.not_dermoscopy:
        st.warning(f"**Not a dermoscopic image?** {NOT_DERMOSCOPY}", icon="🚫")
    if result.ood_score is None:
        st.caption("No input guard for this model: it cannot tell whether this is a "
                   "dermoscopic image.")
    headline, advice = DECISION_TEXT[result.decision]
    decision_box(result)(f"**{headline}.** {advice}")
    if referral is None:
        return
    test = referral.get("test") or {}
    on_test = (f" On held-out test lesions it referred {test['sensitivity']:.0%} of the "
               f"malignant ones and left {test['specificity']:.0%} of the benign ones "
               "unreferred." if test.get("sensitivity") is not None else "")
    st.caption(f"P(malignant) = {result.malignant_probability:.0%} (the sum over "
               f"{', '.join(referral['malignant_classes'])}); the model refers at "
               f"{referral['threshold']:.0%} or more, a threshold chosen on validation lesions "
               f"to refer {referral['target_sensitivity']:.0%} of the malignant ones.{on_test}")


def show_gradcam(member, heatmap, pixels, caption: str, opacity: float = 0.45) -> None:
    """A member's Grad-CAM map over its input image, with the layer and grid it was
    computed on. A 1x1 map has nothing to localise: show the input and say so instead of
    a uniform colour that would read as "the whole image matters"."""
    from skin.gradcam import overlay  # imports TensorFlow: not before a page has drawn

    grid = f"{heatmap.shape[0]}x{heatmap.shape[1]}"
    if heatmap.size > 1:
        st.image(overlay(pixels, heatmap, opacity), width="stretch",
                 caption=f"{caption}; computed on a {grid} grid ({member.gradcam_layer})")
        return
    st.image(pixels, width="stretch")
    st.caption(f"No Grad-CAM for {member.name}: its feature map is 1x1 at "
               f"{member.size} px input, so there is nothing to localise.")


def first_visit(found: Registry, best: str | None, default: str | None) -> None:
    """Before the first image: what the models are and how good the default one (`best`,
    shown as `default`) is on held-out lesions, where the samples are, and where to read
    more."""
    if best == ENSEMBLE:
        evaluation = (found.ensemble_record or {}).get("evaluation") or {}
    else:
        evaluation = test_evaluation(found.cards[best]) if best else {}
    inits = sorted({init_label(card) for card in found.cards.values()})
    with st.container(border=True):
        st.markdown(f"**New here?** {len(found.cards)} CNN models "
                    f"({', '.join(sorted({c['backbone'] for c in found.cards.values()}))}; "
                    f"{'; '.join(inits)}), trained on HAM10000 dermoscopy images.")
        if evaluation.get("balanced_accuracy") is not None:
            interval = (evaluation.get("intervals_95") or {}).get("balanced_accuracy")
            st.markdown(
                f"The default, {default}, scored a balanced accuracy of "
                f"{with_interval(evaluation['balanced_accuracy'], interval)} on "
                f"{evaluation['n']:,} held-out test images (lesions it never saw, from the "
                "same four clinics; expect less on photos from elsewhere). Chance is 0.14.")
        st.markdown("Pick an image in the **Samples** tab above, upload your own or use "
                    "the camera.")
        st.page_link("pages/about.py", label="How the models were trained, the data and "
                     "its licence", icon=":material/info:")


def no_models_message(found: Registry) -> bool:
    """Say what to do when no model is registered; True if the page should stop."""
    for problem in found.problems:
        st.warning(problem)
    if found.cards:
        return False
    st.info("No model is available yet. Train one with `python -m train ... --out "
            "runs/NAME` and point `SKIN_MODEL_DIRS` at that folder (or copy the card and "
            "weights into `assets/models/`), then reload this page. See the README.")
    return True


def sample_folder() -> Path | None:
    configured = os.environ.get("SKIN_SAMPLE_DIR") or _secret("sample_dir", "")
    folder = Path(configured) if configured else DEFAULT_SAMPLES
    return folder if folder.is_dir() else None


def image_input(key: str):
    """An image from an upload, the camera or the sample gallery: (RGB array, its name),
    or (None, None) with an error shown when there is none or it cannot be read."""
    upload_tab, camera_tab, sample_tab = st.tabs(["Upload", "Camera", "Samples"])
    with upload_tab:
        upload = st.file_uploader("Dermoscopic image of one lesion", type=UPLOAD_TYPES,
                                  key=f"{key}-upload", max_upload_size=IMAGE_UPLOAD_MB)
    with camera_tab:
        photo = st.camera_input("Take a photo of the lesion", key=f"{key}-camera")
    with sample_tab:
        sample = _sample_picker(key)
    chosen = upload or photo
    try:
        if chosen is not None:
            return read_image(chosen.getvalue()), chosen.name
        if sample is not None:
            return read_image(sample), sample.name
    except InvalidImage as e:
        st.error(f"This file cannot be used: {e}.")
    return None, None


def _sample_picker(key: str):
    folder = sample_folder()
    if folder is None:
        st.info("No sample folder. Set `SKIN_SAMPLE_DIR` (or `sample_dir` in "
                "st.secrets) to a folder of images, e.g. the HAM10000 images at "
                "`../shared/data/ham10000/images`; none ship with this repository.")
        return None
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower().lstrip(".") in UPLOAD_TYPES)[:24]
    if not files:
        st.info(f"No images in {folder}.")
        return None
    choice = st.selectbox("Sample image", ["(none)"] + [p.name for p in files],
                          key=f"{key}-sample")
    return folder / choice if choice != "(none)" else None
