"""Classify: one image, one model (or the ensemble): the referral decision first, then
the ranked classes, Grad-CAM and uncertainty.

The page draws its title, what the app is, the disclaimer and the input before anything
imports TensorFlow; then it loads the selected model behind a status box while the
visitor picks an image, so the first result comes as soon as that model is ready."""

import json

import streamlit as st

from skin.registry import ENSEMBLE
from ui import charts
from ui.common import (
    disclaimer, first_visit, image_input, no_models_message, predictor, registry,
    show_decision, show_gradcam,
)

st.title("Classify a lesion")
st.markdown("A research demo that classifies a dermoscopic photo of one skin lesion into "
            "the seven HAM10000 classes with CNNs trained on 10,015 HAM10000 images. It "
            "leads with a decision on the risk of malignancy, then shows the classes and "
            "where the model looked.")
disclaimer()
found = registry()
if no_models_message(found):
    st.stop()

image, image_name = image_input("classify")
# Decision first: on a narrow screen the columns stack, and the decision's comes first.
decision_column, image_column = st.columns([2, 1])
with decision_column:
    ensemble_names = found.ensemble_members()
    ensemble_label = f"Ensemble (mean of {len(ensemble_names)} models)"
    options = list(found.cards) + ([ensemble_label] if len(ensemble_names) > 1 else [])
    best = found.best_on_validation()
    default = ensemble_label if best == ENSEMBLE else best
    choice = st.selectbox("Model", options, key="classify-model",
                          index=options.index(default) if default in options else 0)
    if default in options:
        st.caption(f"Default: {default}, the best of these on the validation split "
                   "(balanced accuracy).")
    tta = st.toggle("Test-time augmentation", help="Average the model over 8 mirrored and "
                    "rotated views of the image")
    top_k = st.slider("Classes shown", 1, 7, 3)

use_ensemble = choice == ensemble_label
names = ensemble_names if use_ensemble else [choice]
if image is None:
    with decision_column:
        first_visit(found, best, default)
        for name in names:  # ready before the first image comes
            predictor(found.cards[name])
    st.stop()

from skin.predict import Ensemble  # noqa: E402 (TensorFlow: once the page has drawn)

members = [p for p in (predictor(found.cards[n]) for n in names) if p is not None]
if not members:
    st.stop()
if use_ensemble and len(members) < len(names):
    st.warning(f"The ensemble averages the {len(members)} of its {len(names)} models that "
               f"loaded: {', '.join(m.name for m in members)}. Its referral threshold was "
               "chosen for all of them, so it makes no referral decision.")
model = Ensemble(members, found.ensemble_record) if use_ensemble else members[0]
result = model.predict(image, top_k, tta)
referral = model.rules["referral"]

with decision_column:
    show_decision(result, referral)
    ranked = f"Ranked first by the model: {result.name} ({result.label}), {result.confidence:.0%}"
    st.subheader(ranked + (" (uncertain)" if result.uncertain else ""))
    st.caption("The ranked classes are what the model scores highest, not a diagnosis; the "
               "decision above rests on the risk of malignancy, not on the first class.")
    disclaimer()
    st.plotly_chart(charts.probability_bars(result.probabilities, top_k), width="stretch")
    st.caption(f"{result.model}: {result.latency_ms:.0f} ms, entropy {result.entropy:.2f} "
               f"nats, margin {result.margin:.2f}")
    st.download_button("Download the result (JSON)", json.dumps(
        {"image": image_name, **result.to_dict()}, indent=1), "prediction.json",
        mime="application/json")

with image_column:
    st.image(image, caption=image_name, width="stretch")
    explained = st.selectbox("Grad-CAM of", [m.name for m in members]) if len(members) > 1 \
        else members[0].name
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05)
    member = next(m for m in members if m.name == explained)
    heatmap, pixels = member.gradcam(image, result.label)
    show_gradcam(member, heatmap, pixels, opacity=opacity,
                 caption=f"Grad-CAM for {result.label} ({member.name}, {member.size} px input)")
