"""Evaluation: the comparator (per class, paired, cost, agreement, ROC and PR) on the
shipped test split or on the user's own labelled images; then each model's confusion
matrix, calibration and training curves."""

import hashlib

import pandas as pd
import streamlit as st

from skin.cards import training
from skin.labels import MAX_IMAGES, MAX_ZIP_MB, LabelsError, open_labelled_zip
from skin.registry import ensemble_record_for
from skin.scores import ENSEMBLE, SHIPPED_TEST_SCORES, Scores, ScoresError, score_images
from ui import charts, comparator
from ui.common import disclaimer, no_models_message, predictor, registry

SHIPPED, OWN = "HAM10000 test split (shipped)", "Your own labelled images (zip)"


@st.cache_data(show_spinner=False)
def shipped_scores(modified: float) -> Scores | None:
    """The shipped models' probabilities on the test split (benchmarks/comparison.py);
    `modified`, the file's time, makes a rewritten file a new cache entry."""
    return Scores.read(SHIPPED_TEST_SCORES) if SHIPPED_TEST_SCORES.is_file() else None


def compared_cards(found) -> dict:
    """The models compared: the largest set sharing one class list (one table needs one)."""
    return {n: found.cards[n] for n in found.comparable_models()}


def shipped(found) -> Scores | None:
    try:
        scored = shipped_scores(SHIPPED_TEST_SCORES.stat().st_mtime
                                if SHIPPED_TEST_SCORES.is_file() else 0.0)
    except ScoresError as e:
        st.error(str(e))
        return None
    if scored is None:
        st.info("No scores of the test split are shipped (assets/comparison/test-split.csv; "
                "`python benchmarks/comparison.py --write-scores ...` makes them).")
        return None
    stale = scored.stale_models(found.cards)
    if stale:
        st.warning(f"Left out: {', '.join(stale)}, whose weights changed after the test "
                   "split was scored (run `python benchmarks/comparison.py --write-scores "
                   "assets/comparison/test-split.csv` again).")
        if any(name in stale for name in scored.ensemble_members):
            scored.probs.pop(ENSEMBLE, None)
        for name in stale:
            scored.probs.pop(name, None)
    return scored if scored.probs else None


def uploaded(found) -> Scores | None:
    st.write(f"A zip of at most {MAX_ZIP_MB} MB with your images and one CSV naming each "
             "image's class: columns `image_id,dx` (as HAM10000's metadata) or "
             "`image,label`, or one 1/0 column per class (as the ISIC 2018 ground truth); "
             "an image's id is its file name without the extension. At most "
             f"{MAX_IMAGES} images are scored.")
    upload = st.file_uploader("Labelled images (zip)", type=["zip"], key="labelled-zip",
                              max_upload_size=MAX_ZIP_MB)
    if upload is None:
        return None
    data = upload.getvalue()
    key = hashlib.sha256(data).hexdigest()
    cards = compared_cards(found)
    if st.session_state.get("scored-zip", (None,))[0] != key:
        codes = list(next(iter(cards.values()))["classes"])
        try:
            labelled = open_labelled_zip(data, codes)
        except LabelsError as e:
            st.error(f"{upload.name}: {e}")
            return None
        members = [p for p in (predictor(card) for card in cards.values()) if p is not None]
        if not members:
            return None
        bar = st.progress(0.0, text="Scoring the images …")
        scored, unreadable = score_images(
            members, labelled.labels.index.tolist(), labelled.labels.tolist(), labelled.read,
            f"{upload.name} (your images)", found.ensemble_members(),
            on_progress=lambda done, total: bar.progress(
                done / total, text=f"Scored {done} of {total} images with {len(members)} models"))
        bar.empty()
        st.session_state["scored-zip"] = (key, scored, labelled.skipped + unreadable,
                                          labelled.unknown_labels)
    _, scored, skipped, unknown = st.session_state["scored-zip"]
    if unknown:
        st.warning("Not evaluated, labels no model knows: " + ", ".join(
            f"{label} ({n} image{'s' if n > 1 else ''})" for label, n in unknown.items())
            + f". The models know {', '.join(scored.classes)}.")
    if skipped:
        st.warning(f"Skipped {len(skipped)} file(s):")
        st.dataframe(pd.DataFrame(skipped, columns=["file or image", "why"]), hide_index=True)
    if not scored.labels:
        st.error("No image in the zip could be read: nothing to compare.")
        return None
    return scored


st.title("Evaluation on held-out data")
found = registry()
if no_models_message(found):
    st.stop()
disclaimer()

source = st.radio("Images", [SHIPPED, OWN], horizontal=True, key="evaluation-source")
scored = shipped(found) if source == SHIPPED else uploaded(found)
if scored is not None:
    record = ensemble_record_for(found.ensemble_record, scored.ensemble_members)
    comparator.show(scored, found.cards, record, key="shipped" if source == SHIPPED else "own")
if source == OWN:
    st.stop()

cards = {n: c for n, c in found.cards.items() if c.get("evaluation")}
if not cards:
    st.info("The registered models carry no evaluation in their cards.")
    st.stop()
st.header("Confusion matrices")
normalise = st.radio("Confusion matrices", ["counts", "row-normalised (recall)"],
                     horizontal=True, label_visibility="collapsed",
                     key="confusion-normalise") != "counts"

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
    record = training(card)
    if record.get("history"):
        st.plotly_chart(charts.training_curves(record["history"], name), width="stretch",
                        key=f"curve-{name}")
        counts = record.get("split_counts", {})
        st.caption(f"{name}: split {', '.join(f'{k} {v}' for k, v in counts.items())}; "
                   f"best epoch {record.get('best_epoch')} of {record.get('epochs_run')}")
