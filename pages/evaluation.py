"""Evaluation: confusion matrices, per-class figures, calibration and training curves."""

import pandas as pd
import streamlit as st

from pages import charts
from pages.common import no_models_message, registry

st.title("Evaluation on held-out data")
found = registry()
if no_models_message(found):
    st.stop()

cards = {n: c for n, c in found.cards.items() if c.get("evaluation")}
if not cards:
    st.info("The registered models carry no evaluation in their cards.")
    st.stop()
normalise = st.radio("Confusion matrices", ["counts", "row-normalised (recall)"],
                     horizontal=True) != "counts"

names = list(cards)
for start in range(0, len(names), 2):
    for column, name in zip(st.columns(2), names[start:start + 2]):
        ev = cards[name]["evaluation"]
        with column:
            st.plotly_chart(charts.confusion_heatmap(
                ev["confusion_matrix"], ev["classes"], normalise,
                f"{name}: {ev.get('split', 'test')} split, n={ev['n']}"),
                width="stretch", key=f"cm-{name}")
            per_class = pd.DataFrame(ev["per_class"]).T
            st.dataframe(per_class.style.format(
                {"precision": "{:.2f}", "recall": "{:.2f}", "f1": "{:.2f}", "support": "{:.0f}"}),
                width="stretch")

st.header("Calibration")
st.plotly_chart(charts.reliability_diagram(
    {n: c["evaluation"]["reliability"] for n, c in cards.items() if "reliability" in c["evaluation"]}),
    width="stretch")
st.caption("Accuracy against confidence in 15 bins, after temperature scaling; the "
           "closer to the diagonal, the better the probabilities can be trusted.")

st.header("Training curves")
for name, card in cards.items():
    history = card.get("training", {}).get("history")
    if history:
        st.plotly_chart(charts.training_curves(history, name), width="stretch",
                        key=f"curve-{name}")
        counts = card["training"].get("split_counts", {})
        st.caption(f"{name}: split {', '.join(f'{k} {v}' for k, v in counts.items())}; "
                   f"best epoch {card['training'].get('best_epoch')} of "
                   f"{card['training'].get('epochs_run')}")
