"""The comparator views of the Evaluation page: models scored on the same labelled images
(a skin.scores.Scores) compared per class, in pairs, by cost, by agreement and by their
ROC and precision-recall curves, with every table downloadable."""

import hashlib

import numpy as np
import pandas as pd
import streamlit as st
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from skin.cards import init_label, training
from skin.classes import MALIGNANT, full_name
from skin.comparison import (
    SEED_SPREAD, agreement, balanced_accuracy_intervals, class_support, paired_differences,
    pareto_front, per_class_recall, pretraining_effect,
)
from skin.decision import malignant_probability, usable_referral
from skin.results import with_interval
from skin.scores import ENSEMBLE
from ui import charts

BOOTSTRAP = 1000
MALIGNANT_VS_BENIGN = "malignant vs benign"


def digest(scored) -> str:
    return hashlib.sha256(scored.table().to_csv().encode()).hexdigest()


@st.cache_data(show_spinner="Comparing the models …", max_entries=8)
def figures(scored_digest: str, _scored) -> dict:
    """Everything the views show, computed once per set of scores (keyed by its digest)."""
    y, probs, classes = _scored.y, _scored.probs, _scored.classes
    # The ensemble agrees with its members by construction: agreement is among models.
    kappa, split = agreement(y, {n: p for n, p in probs.items() if n != ENSEMBLE})
    return {"recall": per_class_recall(y, probs, classes), "support": class_support(y, classes),
            "pairs": paired_differences(y, probs, n_resamples=BOOTSTRAP),
            "quality": balanced_accuracy_intervals(y, probs, n_resamples=BOOTSTRAP),
            "kappa": kappa, "split": split}


def show(scored, cards: dict, ensemble_record: dict | None, key: str) -> None:
    """All the views for these scores; `cards` gives each model's size and referral rule
    (the ensemble's is `ensemble_record`), `key` keeps widgets apart per data source."""
    found = figures(digest(scored), scored)
    names = list(scored.probs)
    st.caption(f"{scored.description}: n = {len(scored.labels)} images, the same for every "
               f"model; 95% bootstrap intervals ({BOOTSTRAP} resamples).")

    st.header("Which model for which class")
    st.plotly_chart(charts.recall_heatmap(found["recall"], found["support"]), width="stretch",
                    key=f"recall-{key}")
    st.caption("Recall (sensitivity) of each model on each class; n is the images of the "
               "class. A class with a few dozen images moves by several points per image.")

    st.header("Paired differences in balanced accuracy")
    st.plotly_chart(charts.paired_matrix(found["pairs"], names), width="stretch",
                    key=f"pairs-{key}")
    st.caption(
        "Row minus column, in points, on the same images, with a paired 95% bootstrap "
        "interval. * the interval excludes 0 but the difference is smaller than what "
        f"retraining one model with another seed moved it here ({SEED_SPREAD * 100:.1f} points "
        "on the test split, docs/training-log.md); ** beyond that too. Unmarked cells are "
        "not distinguishable from noise: do not rank models on them.")
    with st.expander("The paired table, with McNemar's test on accuracy"):
        st.dataframe(found["pairs"].style.format(
            {"difference": "{:+.3f}", "low": "{:+.3f}", "high": "{:+.3f}", "mcnemar_p": "{:.3g}"}),
            width="stretch", hide_index=True)

    show_pretraining_effect(found["pairs"], found["quality"], cards)

    st.header("Cost against quality")
    show_cost(scored, cards, found["quality"], key)

    st.header("Agreement")
    show_agreement(found, len(scored.labels), key)

    st.header("ROC and precision-recall")
    show_curves(scored, cards, ensemble_record, key)

    st.header("Downloads")
    tables = {"per-image probabilities": scored.table(), "per-class recall": found["recall"],
              "paired differences": found["pairs"], "Cohen's kappa": found["kappa"],
              "balanced accuracy": found["quality"]}
    for column, (label, table) in zip(st.columns(len(tables)), tables.items()):
        column.download_button(label, table.to_csv(index=label in ("per-class recall",
                               "Cohen's kappa", "balanced accuracy")),
                               file_name=f"{label.replace(' ', '_').replace(chr(39), '')}.csv",
                               mime="text/csv", key=f"download-{label}-{key}")


def show_pretraining_effect(pairs, quality, cards: dict) -> None:
    """ImageNet against from scratch, for each backbone trained both ways: paired on these
    images, with what each cost to train."""
    compared = {n: c for n, c in cards.items() if n in quality.index}
    effect = pretraining_effect(
        pairs, {n: c.get("init") == "imagenet" for n, c in compared.items()},
        {n: c["backbone"] for n, c in compared.items()})
    if effect.empty:
        return
    st.header("What ImageNet pretraining buys")
    for row in effect.itertuples():
        scratch, imagenet = compared[row.scratch], compared[row.imagenet]
        st.markdown(
            f"**{row.backbone}**: {row.imagenet} ({init_label(imagenet)}) minus "
            f"{row.scratch} ({init_label(scratch)}): **{row.difference * 100:+.1f} points** "
            f"of balanced accuracy [{row.low * 100:+.1f}, {row.high * 100:+.1f}], "
            f"{row.verdict}. Balanced accuracy {with_interval(*interval_of(quality, row.imagenet))} "
            f"against {with_interval(*interval_of(quality, row.scratch))}. Training: "
            f"{training_cost(imagenet)} against {training_cost(scratch)}.")
    st.caption("Paired: the same images, resampled together (1,000 bootstrap resamples). "
               "Training time as each card records it, on 2 CPU cores.")


def interval_of(quality, name: str) -> tuple:
    row = quality.loc[name]
    return row["value"], (row["low"], row["high"])


def training_cost(card: dict) -> str:
    record = training(card)
    if "seconds" not in record:
        return "not recorded"
    return (f"{record['seconds'] / 60:.0f} min, {record.get('epochs_run', '?')} epochs at "
            f"{card['input_size']} px")


def member_cards(name: str, cards: dict, scored) -> list[dict]:
    """The cards behind a model name: the ensemble stands for all its scored members."""
    names = scored.ensemble_members if name == ENSEMBLE else [name]
    return [cards[n] for n in names if n in cards]


def show_cost(scored, cards: dict, quality, key: str) -> None:
    costs = {
        "seconds per image (scoring these images, batched)":
            lambda name, used: scored.seconds_per_image.get(name),
        "parameters (millions)": lambda name, used: sum(c["parameters"] for c in used) / 1e6,
        "weights file (MiB)": lambda name, used: sum(c["source"]["bytes"] for c in used) / 2**20,
    }
    label = st.radio("Cost", list(costs), horizontal=True, key=f"cost-{key}")
    points = []
    for name in scored.probs:
        used = member_cards(name, cards, scored)
        cost = costs[label](name, used) if used else None
        if cost is not None:
            row = quality.loc[name]
            points.append({"name": name, "cost": cost, "quality": row["value"],
                           "low": row["low"], "high": row["high"]})
    if not points:
        st.info("No model here has a recorded cost.")
        return
    front = pareto_front([p["cost"] for p in points], [p["quality"] for p in points])
    st.plotly_chart(charts.cost_quality(points, label, front), width="stretch",
                    key=f"cost-chart-{key}")
    st.caption("The dotted line joins the Pareto front: the models no other model beats on "
               "both cost and balanced accuracy. Intervals overlapping along the front mean "
               "the cheaper model is as good as far as these images can tell."
               + (" The ensemble's cost is its members' together." if ENSEMBLE in scored.probs
                  else ""))


def show_agreement(found: dict, n: int, key: str) -> None:
    st.plotly_chart(charts.kappa_heatmap(found["kappa"]), width="stretch", key=f"kappa-{key}")
    agree, disagree = found["split"]["all_agree"], found["split"]["disagree"]
    if agree["accuracy"] is not None:
        a = agree["accuracy"]
        st.write(f"All models name the same class on **{agree['n']} of {n}** images; their "
                 f"shared answer is right on {a['value']:.1%} of them "
                 f"[{a['low']:.1%}, {a['high']:.1%}].")
    if disagree["n"]:
        st.write(f"On the other {disagree['n']} images, each model's accuracy:")
        st.dataframe(pd.DataFrame(
            [(name, f"{r['value']:.1%} [{r['low']:.1%}, {r['high']:.1%}]")
             for name, r in disagree["accuracy_by_model"].items()],
            columns=["model", "accuracy where the models disagree (95% interval)"]),
            hide_index=True)
    st.caption("Cohen's kappa between the classes two models name: 1 is the same answer on "
               "every image, 0 no more agreement than chance (the ensemble is left out: it "
               "agrees with its members by construction). Where the models disagree, every "
               "answer deserves a second look.")


def show_curves(scored, cards: dict, ensemble_record: dict | None, key: str) -> None:
    names = st.multiselect("Models", list(scored.probs), default=list(scored.probs),
                           key=f"curve-models-{key}")
    malignant = [c for c in scored.classes if c in MALIGNANT]
    targets = ([MALIGNANT_VS_BENIGN] if malignant else []) + list(scored.classes)
    target = st.selectbox("Positive class", targets, key=f"curve-class-{key}",
                          format_func=lambda t: t if t == MALIGNANT_VS_BENIGN
                          else f"{full_name(t)} ({t})")
    y = scored.y
    if target == MALIGNANT_VS_BENIGN:
        positive = np.isin(y, [scored.classes.index(c) for c in malignant])
    else:
        positive = y == scored.classes.index(target)
    if positive.all() or not positive.any():
        st.info(f"These images hold {'only' if positive.all() else 'no'} {target} images: "
                "a curve needs both.")
        return
    roc, pr, operating = {}, {}, {}
    for name in names:
        probs = scored.probs[name]
        score = (malignant_probability(probs, scored.classes, malignant)
                 if target == MALIGNANT_VS_BENIGN else probs[:, scored.classes.index(target)])
        fpr, tpr, _ = roc_curve(positive, score)
        precision, recall, _ = precision_recall_curve(positive, score)
        roc[f"{name} (AUC {auc(fpr, tpr):.3f})"] = (fpr, tpr)
        pr[name] = (recall, precision)
        rule = usable_referral(ensemble_record.get("referral") if name == ENSEMBLE and
                               ensemble_record else cards.get(name, {}).get("referral"),
                               scored.classes)
        if target == MALIGNANT_VS_BENIGN and rule:
            refer = score >= rule["threshold"]
            operating[f"{name}: refer at {rule['threshold']:.2f}"] = (
                refer[~positive].mean(), refer[positive].mean())
    left, right = st.columns(2)
    left.plotly_chart(charts.curves(roc, "false positive rate (1 - specificity)",
                                    "sensitivity", operating, diagonal=True),
                      width="stretch", key=f"roc-{key}")
    right.plotly_chart(charts.curves(pr, "recall (sensitivity)", "precision"),
                       width="stretch", key=f"pr-{key}")
    if operating:
        st.caption("x: where each model's referral rule (its threshold, chosen on validation "
                   "for 95% sensitivity) operates on these images.")
