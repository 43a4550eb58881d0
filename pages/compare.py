"""Compare: one image through every model side by side (the ensemble's decision first,
each model's decision, whether they disagree on referral), then their held-out metrics."""

from collections import Counter

import streamlit as st

from skin.classes import full_name
from skin.decision import DECISION_TEXT, NOT_DERMOSCOPY, REFER
from skin.predict import Ensemble
from ui import charts
from ui.common import (
    decision_box, disclaimer, image_input, no_models_message, predictor,
    registry, show_decision, show_gradcam,
)
from ui.metrics_table import METRICS, metrics_table, styled

st.title("Compare the backbones")
found = registry()
if no_models_message(found):
    st.stop()

image, image_name = image_input("compare")
latency = {}
if image is not None:
    members = [p for p in (predictor(card) for card in found.cards.values()) if p is not None]
    explained = [m.explain(image) for m in members]  # each prediction with its map
    results = [e.prediction for e in explained]
    same_classes = [m for m in members if m.name in found.ensemble_members()]
    if len(same_classes) > 1:
        st.subheader("Ensemble (mean of calibrated probabilities)")
        ensemble = Ensemble(same_classes, found.ensemble_record)
        show_decision(ensemble.predict(image, member_predictions=[
            r for m, r in zip(members, results) if m in same_classes]), ensemble.rules["referral"])
    elif results and any(r.not_dermoscopy for r in results):
        st.warning(NOT_DERMOSCOPY, icon="🚫")
    referring = [r.model for r in results if r.decision == REFER]
    if results and 0 < len(referring) < len(results):
        st.warning(f"**The models disagree on referral**: {len(referring)} of {len(results)} "
                   f"refer this lesion ({', '.join(referring)}). When in doubt, have it "
                   "examined.")
    disclaimer()
    per_row = 3
    for start in range(0, len(members), per_row):
        for column, member, (result, heatmap, pixels) in zip(
                st.columns(per_row), members[start:start + per_row],
                explained[start:start + per_row]):
            with column:
                st.markdown(f"**{member.name}**")
                decision_box(result)(
                    DECISION_TEXT[result.decision][0]
                    + f" (P(malignant) {result.malignant_probability:.0%})"
                    + (" · not dermoscopic?" if result.not_dermoscopy else ""))
                verdict = " (uncertain)" if result.uncertain else ""
                st.write(f"Ranked first: {result.name} ({result.label}), "
                         f"{result.confidence:.0%}{verdict}")
                st.plotly_chart(charts.probability_bars(result.probabilities, 3, height=180),
                                width="stretch", key=f"bars-{member.name}")
                show_gradcam(member, heatmap, pixels,
                             caption=f"Grad-CAM for {result.label}; prediction and map "
                                     f"{result.latency_ms:.0f} ms")
                latency[member.name] = result.latency_ms
    if results:
        votes = Counter(r.label for r in results)
        label, count = votes.most_common(1)[0]
        st.info(f"Ranked first: {count} of {len(results)} models rank {full_name(label)} "
                f"({label}) first.")
        st.caption(f"Compared: {image_name}")

st.header("Held-out test metrics")
table = metrics_table(found.cards)
if latency:
    table["latency on this image (ms)"] = table.index.map(lambda n: round(latency.get(n, 0), 1) or None)
splits = set(table["split"])
if len(splits) > 1:
    st.warning("These models were not evaluated on one split (the split fingerprints "
               "differ): their figures are not directly comparable.")
st.dataframe(styled(table), width="stretch")
st.caption("From each model's card: its test split (images of one lesion never on two "
           "sides), calibrated by a temperature fitted on validation. Best per column in "
           "bold; ECE: lower is better. Intervals: 95% bootstrap over test images. Referral "
           "sensitivity and specificity: the share of malignant test lesions referred and of "
           "benign ones left unreferred, at the threshold chosen on validation.")
st.plotly_chart(charts.metric_bars(table, [m for m in METRICS if m != "ece"]), width="stretch")
