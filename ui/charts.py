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


def recall_heatmap(recall, support: dict):
    """Models (rows) x classes (columns) recall, each class labelled with its images."""
    columns = [f"{c} (n={support[c]})" for c in recall.columns]
    text = [["n/a" if np.isnan(v) else f"{v:.2f}" for v in row] for row in recall.to_numpy()]
    fig = go.Figure(go.Heatmap(z=recall.to_numpy(), x=columns, y=list(recall.index), text=text,
                               texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
                               colorbar=dict(title="recall")))
    fig.update_layout(yaxis_autorange="reversed", height=120 + 40 * len(recall),
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


VERDICT_MARK = {"not resolved": "", "resolved, within seed spread": " *", "resolved": " **"}


def paired_matrix(pairs, names: list[str]):
    """Row minus column balanced accuracy, in points, with its paired interval; * marks
    a resolved difference within the seed spread, ** one beyond it."""
    z = np.full((len(names), len(names)), np.nan)
    text = [["" for _ in names] for _ in names]
    index = {name: i for i, name in enumerate(names)}
    for row in pairs.itertuples():
        for a, b, sign, low, high in ((row.model_a, row.model_b, 1, row.low, row.high),
                                      (row.model_b, row.model_a, -1, -row.high, -row.low)):
            i, j = index[a], index[b]
            z[i, j] = sign * row.difference * 100
            text[i][j] = (f"{z[i, j]:+.1f}{VERDICT_MARK[row.verdict]}<br>"
                          f"[{low * 100:+.1f}, {high * 100:+.1f}]")
    limit = max(np.nanmax(np.abs(z)) if np.isfinite(z).any() else 1, 1)
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, text=text, texttemplate="%{text}",
                               colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
                               colorbar=dict(title="points")))
    fig.update_layout(xaxis_title="minus this model", yaxis_title="this model",
                      yaxis_autorange="reversed", height=160 + 60 * len(names),
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def cost_quality(points, cost_label: str, front):
    """Balanced accuracy (with its interval) against a cost, one colour per model, the
    Pareto front joined. points: rows of name, cost, quality, low, high."""
    fig = go.Figure()
    for p in points:
        fig.add_trace(go.Scatter(
            x=[p["cost"]], y=[p["quality"]], mode="markers", name=p["name"],
            marker=dict(size=11), error_y=dict(type="data", symmetric=False,
                                                array=[p["high"] - p["quality"]],
                                                arrayminus=[p["quality"] - p["low"]])))
    on_front = sorted((p for p, keep in zip(points, front) if keep), key=lambda p: p["cost"])
    fig.add_trace(go.Scatter(x=[p["cost"] for p in on_front], y=[p["quality"] for p in on_front],
                             mode="lines+markers", name="Pareto front",
                             marker=dict(size=18, symbol="circle-open", color=MALIGNANT_COLOUR),
                             line=dict(dash="dot", color=MALIGNANT_COLOUR)))
    fig.update_layout(xaxis_title=cost_label, yaxis_title="balanced accuracy (95% interval)",
                      height=440, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def kappa_heatmap(kappa):
    fig = go.Figure(go.Heatmap(z=kappa.to_numpy(), x=list(kappa.columns), y=list(kappa.index),
                               text=kappa.map(lambda v: f"{v:.2f}").to_numpy(),
                               texttemplate="%{text}", colorscale="Greens", zmin=0, zmax=1,
                               colorbar=dict(title="kappa")))
    fig.update_layout(yaxis_autorange="reversed", height=160 + 50 * len(kappa),
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def curves(lines: dict, x_title: str, y_title: str, points: dict | None = None,
           diagonal: bool = False):
    """One line per model ({name: (x, y)}), with optional marked operating points."""
    fig = go.Figure()
    if diagonal:
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                 line=dict(dash="dash", color="grey")))
    for name, (x, y) in lines.items():
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name))
    for name, (x, y) in (points or {}).items():
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=name,
                                 marker=dict(size=11, symbol="x", color=MALIGNANT_COLOUR)))
    fig.update_layout(xaxis=dict(title=x_title, range=[0, 1]),
                      yaxis=dict(title=y_title, range=[0, 1.02]), height=520,
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=10, r=10, t=10, b=10))
    return fig
