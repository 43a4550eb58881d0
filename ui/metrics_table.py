"""The held-out metrics of every model, from its card, as one table."""

import pandas as pd

from skin.cards import class_balance, init_label, referral_on_test, test_evaluation, training

METRICS = ["accuracy", "balanced_accuracy", "macro_f1", "top3_accuracy", "auc_ovr", "ece"]
LOWER_IS_BETTER = {"ece"}
# The referral rule on the test split: a trade-off, so no column has a "best".
REFERRAL = ["referral sensitivity", "referral specificity"]


def metrics_table(cards: dict) -> pd.DataFrame:
    """One row per model: test metrics, their 95% intervals, size and provenance."""
    rows = {}
    for name, card in cards.items():
        ev = test_evaluation(card)
        intervals = ev.get("intervals_95") or {}
        row = {m: ev.get(m) for m in METRICS}
        row.update({f"{m} 95% CI": _interval(intervals.get(m)) for m in METRICS})
        test = referral_on_test(card.get("referral"))
        for column in REFERRAL:
            key = column.split()[-1]
            row[column] = test.get(key)
            row[f"{column} 95% CI"] = _interval((test.get("intervals_95") or {}).get(key))
        row.update({
            "test n": ev.get("n"),
            "parameters (M)": round(card.get("parameters", 0) / 1e6, 1) or None,
            "weights (MiB)": round(card["source"].get("bytes", 0) / 2**20, 1) or None,
            "input px": card["input_size"],
            "initialisation": init_label(card),
            "class balance": class_balance(card),
            "split": (training(card).get("split_fingerprint") or "")[:10],
        })
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _interval(ci):
    return f"{ci[0]:.3f} to {ci[1]:.3f}" if ci else ""


def best_per_column(table: pd.DataFrame) -> dict:
    """Metric -> names of the best models (highest; lowest for ECE; all of them on a tie)."""
    best = {}
    for metric in METRICS:
        column = table[metric].dropna()
        if len(column):
            top = column.min() if metric in LOWER_IS_BETTER else column.max()
            best[metric] = set(column.index[column == top])
    return best


def styled(table: pd.DataFrame):
    best = best_per_column(table)

    def mark(column):
        return ["font-weight: bold; background-color: #e5f3e5" if name in best.get(column.name, ())
                else "" for name in column.index]

    return table.style.apply(mark, subset=list(best)).format(
        {m: "{:.3f}" for m in METRICS + REFERRAL}, na_rep="n/a")
