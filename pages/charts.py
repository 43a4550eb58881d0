"""Plotly figures of the app: probabilities, metrics, confusion matrices, reliability."""

import numpy as np
import plotly.graph_objects as go

from skin.classes import full_name, is_malignant

MALIGNANT_COLOUR, BENIGN_COLOUR = "#b2182b", "#4a7ab5"


def probability_bars(probabilities: dict, top_k: int | None = None, height: int = 260):
    """Horizontal bars, most probable on top; malignant classes in red."""
    ranked = sorted(probabilities.items(), key=lambda kv: kv[1])[-(top_k or len(probabilities)):]
    fig = go.Figure(go.Bar(
        x=[p for _, p in ranked], y=[f"{full_name(c)} ({c})" for c, _ in ranked],
        orientation="h", text=[f"{p:.1%}" for _, p in ranked], textposition="auto",
        marker_color=[MALIGNANT_COLOUR if is_malignant(c) else BENIGN_COLOUR for c, _ in ranked],
    ))
    fig.update_layout(xaxis=dict(range=[0, 1], tickformat=".0%", title="probability"),
                      height=height, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def confusion_heatmap(matrix, classes, normalise: bool, title: str):
    counts = np.asarray(matrix, dtype=float)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalise else counts
    text = [[f"{v:.2f}" if normalise else f"{int(v)}" for v in row] for row in values]
    fig = go.Figure(go.Heatmap(z=values, x=classes, y=classes, text=text,
                               texttemplate="%{text}", colorscale="Blues", showscale=False))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true",
                      yaxis_autorange="reversed", height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def reliability_diagram(bins_by_model: dict):
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                               line=dict(dash="dash", color="grey")))
    for name, bins in bins_by_model.items():
        points = [(c, a) for c, a in zip(bins["confidence"], bins["accuracy"]) if c is not None]
        fig.add_trace(go.Scatter(x=[c for c, _ in points], y=[a for _, a in points],
                                 mode="lines+markers", name=name))
    fig.update_layout(xaxis_title="confidence", yaxis_title="accuracy", height=380,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def training_curves(history: list, name: str):
    epochs = [h["epoch"] for h in history]
    fig = go.Figure()
    for key, label in (("accuracy", "train accuracy (training mode)"),
                       ("val_accuracy", "val accuracy"),
                       ("val_balanced_accuracy", "val balanced accuracy"),
                       ("val_macro_f1", "val macro-F1")):
        fig.add_trace(go.Scatter(x=epochs, y=[h.get(key) for h in history], name=label,
                                 mode="lines+markers"))
    fig.update_layout(title=name, xaxis_title="epoch", yaxis=dict(range=[0, 1]), height=320,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def metric_bars(table, metrics):
    fig = go.Figure()
    for metric in metrics:
        fig.add_trace(go.Bar(name=metric, x=table.index, y=table[metric]))
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 1]), height=340,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig
