"""The results table, made from the model cards (and the ensemble record), so that a
figure in the README never differs from its card.

    python -m skin results                      # print the table of the registered models
    python -m skin results --update README.md   # rewrite the table between its markers
"""

from pathlib import Path

from skin.cards import init_label, referral_on_test

START = "<!-- results table: made by `python -m skin results --update`; do not edit -->"
END = "<!-- end of results table -->"
METRICS = [("balanced accuracy", "balanced_accuracy"), ("accuracy", "accuracy"),
           ("macro-F1", "macro_f1"), ("AUC (OvR)", "auc_ovr"), ("ECE", "ece")]


class ResultsError(Exception):
    pass


def with_interval(value, interval) -> str:
    """0.652 [0.599, 0.702]; 'n/a' without a value."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def _row(name: str, init: str, evaluation: dict, referral: dict | None, cards: list[dict]) -> str:
    intervals = evaluation.get("intervals_95") or {}
    test = referral_on_test(referral)
    rule = [with_interval(test.get(k), (test.get("intervals_95") or {}).get(k))
            for k in ("sensitivity", "specificity")] if test else ["no rule", "no rule"]
    cost = (f"{sum(c['parameters'] for c in cards) / 1e6:.1f} M",
            f"{sum(c['source']['bytes'] for c in cards) / 2**20:.1f} MiB")
    return "| " + " | ".join([name, init] + [with_interval(evaluation.get(k), intervals.get(k))
                                       for _, k in METRICS] + rule + list(cost)) + " |"


def results_table(registry) -> str:
    """A Markdown table of every registered model's test figures with their 95%
    intervals, and the ensemble's where its record names these models; with a caption."""
    cards = [c for c in registry.cards.values() if c.get("evaluation")]
    if not cards:
        raise ResultsError("no registered model card carries an evaluation")
    header = ["model", "initialisation"] + [label for label, _ in METRICS] + [
        "referral sensitivity", "referral specificity", "parameters", "weights"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [_row(c["name"], init_label(c), c["evaluation"], c.get("referral"), [c])
              for c in cards]
    record = registry.ensemble_record
    if record and record.get("evaluation") and set(record["members"]) <= set(registry.cards):
        members = [registry.cards[n] for n in record["members"]]
        inits = sorted({init_label(c) for c in members})
        lines.append(_row(f"**ensemble** (mean of {len(members)})", " + ".join(inits),
                          record["evaluation"],
                          record.get("referral"), members))
    splits = sorted({(c["evaluation"]["n"], c["evaluation"].get("split", "test")) for c in cards})
    n = ", ".join(f"{n:,} {split} images" for n, split in splits)
    return "\n".join(lines + [
        "",
        f"Held-out {n}, split by lesion; 95% bootstrap intervals. Referral: the share of "
        "malignant lesions referred (sensitivity) and of benign ones not referred "
        "(specificity) at the threshold each model chose on validation for 95% sensitivity.",
    ])


def with_table(text: str, table: str, name: str = "the document") -> str:
    """The text with the block between START and END replaced by the table."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ResultsError(f"{name} needs one pair of results-table markers:\n{START}\n{END}")
    before, rest = text.split(START)
    return before + START + "\n" + table + "\n" + END + rest.split(END, 1)[1]


def update(path, table: str) -> bool:
    """Rewrite the table in a file; True if it changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    new = with_table(old, table, str(path))
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old
