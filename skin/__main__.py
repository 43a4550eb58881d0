"""python -m skin: list, fetch, predict with and evaluate the registered models.

    python -m skin models
    python -m skin fetch [--model NAME|all]
    python -m skin predict IMAGE... [--model NAME|all|ensemble] [--tta] [--json]
    python -m skin evaluate --images DIR --labels CSV [--model NAME|all|ensemble] [--json]
        [--compare [--out DIR]]
    python -m skin export --model NAME [--format tflite|onnx] [--out DIR] [--float16]
    python -m skin results [--update README.md]

Errors exit 2 with one line; progress goes to stderr; --json puts one JSON object on
stdout. With --model all or ensemble, a model that cannot be loaded is left out with a
note and the others go on (exit 1).
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from skin.cards import init_label  # noqa: E402
from skin.decision import (  # noqa: E402
    DECISION_TEXT, NOT_DERMOSCOPY, is_flagged, malignant_probability, referral_report,
    usable_referral,
)
from skin.fetch import FetchError, describe, fetch  # noqa: E402
from skin.images import HEIF_SUFFIXES, IMAGE_SUFFIXES, InvalidImage, read_image  # noqa: E402
from skin.labels import LabelsError, read_labels  # noqa: E402
from skin.registry import (  # noqa: E402
    LOAD_ERRORS, Registry, ensemble_record_for, load_model, weights_present,
)

USER_ERRORS = (*LOAD_ERRORS, InvalidImage, LabelsError)


# Images held in memory at once by `evaluate`: 32 photos of 12 megapixels take 1.1 GB.
EVALUATION_CHUNK = 32


class UsageError(Exception):
    pass


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def chosen_cards(registry: Registry, name: str) -> list[dict]:
    if not registry.cards:
        raise UsageError("no models are registered: put model cards in assets/models or "
                         "name a folder of cards in SKIN_MODEL_DIRS")
    if name == "all":
        return list(registry.cards.values())
    if name == "ensemble":
        return [registry.cards[n] for n in registry.ensemble_members()]
    return [registry.get(name)]


def predictors(cards, choice: str) -> tuple[list, dict]:
    """The loaded Predictors, and name -> error for the models that failed to load. A
    model named alone must load; with all or ensemble the others go on without it."""
    from skin.predict import Predictor
    loaded, unavailable = [], {}
    for card in cards:
        progress(f"loading {card['name']} ...")
        try:
            loaded.append(Predictor.from_card(card))
        except LOAD_ERRORS as e:
            if choice not in ("all", "ensemble"):
                raise
            progress(f"error: leaving out {card['name']}: {e}")
            unavailable[card["name"]] = str(e)
    if not loaded:
        raise UsageError("none of the models could be loaded (the reasons are above)")
    return loaded, unavailable


def cmd_models(args, registry):
    rows = [{"name": c["name"], "backbone": c["backbone"], "input_size": c["input_size"],
             "classes": len(c["classes"]), "initialisation": init_label(c),
             "source": describe(c["source"]),
             "weights_present": weights_present(c)} for c in registry.cards.values()]
    if args.json:
        print(json.dumps({"models": rows, "problems": registry.problems}, indent=1))
        return 0
    if not rows:
        print("no models registered (assets/models and SKIN_MODEL_DIRS hold no cards)")
    for r in rows:
        print(f"{r['name']:<28} {r['backbone']:<15} {r['input_size']:>4} px  {r['classes']} "
              f"classes  {'present' if r['weights_present'] else 'not downloaded':<15} "
              f"{r['source']}  ({r['initialisation']})")
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def cmd_fetch(args, registry):
    """Exit 0 if every chosen model's weights are here, 1 if some are, 2 if none are (so
    a model named alone that fails exits 2, as every other command's error does)."""
    cards = chosen_cards(registry, args.model)
    failed = 0
    for card in cards:
        try:
            path = fetch(card)
            print(f"{card['name']}: {path}")
        except FetchError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return 0 if not failed else (1 if failed < len(cards) else 2)


def cmd_predict(args, registry):
    images, errors = {}, {}
    for path in args.images:  # every file is checked before TensorFlow loads
        try:
            images[path] = read_image(path)
        except InvalidImage as e:
            errors[path] = str(e)
            print(f"error: {path}: {e}", file=sys.stderr)
    if not images:
        if args.json:
            print(json.dumps({"predictions": {}, "errors": errors, "unavailable_models": {}},
                             indent=1))
        return 2
    cards = chosen_cards(registry, args.model)
    from skin.predict import DISCLAIMER, Ensemble
    members, unavailable = predictors(cards, args.model)
    for member in members:
        member.warm_up(tta=args.tta)  # the latencies printed are predictions', not tracing
    in_ensemble = [m for m in members if m.name in registry.ensemble_members()]
    combined = Ensemble(in_ensemble, registry.ensemble_record) if in_ensemble else None
    results = {}
    for path, image in images.items():
        own = {} if args.model == "ensemble" else \
            {p.name: p.predict(image, args.top_k, args.tta) for p in members}
        results[path] = [prediction.to_dict() for prediction in own.values()]
        if args.model == "ensemble" or (args.model == "all" and len(in_ensemble) > 1):
            results[path].append(combined.predict(
                image, args.top_k, args.tta,
                member_predictions=[own[m.name] for m in in_ensemble] if own else None,
            ).to_dict())
    status = 2 if errors else (1 if unavailable else 0)
    if args.json:
        print(json.dumps({"predictions": results, "errors": errors,
                          "unavailable_models": unavailable}, indent=1))
        return status
    for path, predictions in results.items():
        print(path)
        for p in predictions:
            print(f"  {p['model']}: {decision_line(p)}")
            if p["not_dermoscopy"]:
                print(f"    warning: {NOT_DERMOSCOPY}")
            top = ", ".join(f"{t['code']} {t['probability']:.2f}" for t in p["top_k"])
            ranked = " (uncertain)" if p["uncertain"] else ""
            print(f"    ranked first: {p['label']} ({p['name']}) {p['confidence']:.2f}"
                  f"{ranked}  [{top}]  {p['latency_ms']:.0f} ms")
    print(DISCLAIMER, file=sys.stderr)
    return status


def decision_line(prediction: dict) -> str:
    """The decision first, in capitals, with P(malignant) against the threshold."""
    headline, advice = DECISION_TEXT[prediction["decision"]]
    if prediction["decision"] is None:
        return f"{headline.upper()}: {advice}"
    return (f"{headline.upper()}: P(malignant) {prediction['malignant_probability']:.2f} "
            f"(refer at {prediction['refer_threshold']:.2f} or more). {advice}")


def find_images(folder: Path, ids) -> tuple[dict, list]:
    """id -> file whose name is the id plus an image extension; and the ids without one."""
    if not folder.is_dir():
        raise UsageError(f"--images {folder} is not a folder")
    # HEIC files are found even without pillow-heif, so read_image can say what is missing.
    suffixes = IMAGE_SUFFIXES + HEIF_SUFFIXES
    by_stem = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in suffixes}
    return {i: by_stem[i] for i in ids if i in by_stem}, [i for i in ids if i not in by_stem]


def fitting_cards(cards: list[dict], labels, model: str) -> list[dict]:
    """The cards whose classes hold every label; with --model all, the others are left
    out with a note, otherwise they are an error."""
    fitting = []
    for card in cards:
        unknown = sorted(set(labels) - set(card["classes"]))
        message = (f"labels outside the classes of {card['name']} "
                   f"({', '.join(card['classes'])}): {', '.join(unknown)}")
        if not unknown:
            fitting.append(card)
        elif model == "all":
            progress(f"leaving out {card['name']}: {message}")
        else:
            raise UsageError(message)
    if not fitting:
        raise UsageError("no registered model has every class of the labels: "
                         f"{', '.join(sorted(set(labels)))}")
    return fitting


def figures_under_rules(y, probs, guard_scores, classes, rules: dict | None,
                        n_resamples: int) -> dict:
    """The figures of one model (or the ensemble) on labelled images, under its own
    rules: its referral threshold and its input guard (a card or an ensemble record)."""
    from skin.metrics import evaluate
    figures = evaluate(y, probs, classes, n_resamples=n_resamples)
    referral = usable_referral((rules or {}).get("referral"), classes)
    figures["referral"] = None if referral is None else {
        "threshold": referral["threshold"], **referral_report(
            np.isin(y, [classes.index(c) for c in referral["malignant_classes"]]),
            malignant_probability(probs, classes, referral["malignant_classes"]),
            referral["threshold"], n_resamples=n_resamples)}
    guard = (rules or {}).get("guard")
    figures["guard_flagged"] = None if guard is None or guard_scores is None else \
        float(np.mean(is_flagged(guard_scores, guard)))
    return figures


def evaluation_report(args, registry, loaded, labels, outputs, members) -> dict:
    """{model name: figures} for every loaded model (unless only the ensemble was
    asked for) and the ensemble of the loaded `members`, with its members named."""
    from skin.predict import ensemble_guard_score
    from skin.scores import ENSEMBLE

    def true_indices(card):
        return [card["classes"].index(label) for label in labels]

    report = {}
    if args.model != "ensemble":
        for predictor in loaded:
            report[predictor.name] = figures_under_rules(
                true_indices(predictor.card), outputs.probs[predictor.name],
                outputs.guard_scores[predictor.name], predictor.classes, predictor.card,
                args.bootstrap)
    if args.model == "ensemble" and len(members) == 1:
        progress(f"the ensemble has one model, {members[0]}: its figures are that model's")
    if members and (args.model == "ensemble" or (args.model == "all" and len(members) > 1)):
        shared = registry.cards[members[0]]  # every member has its classes
        report["ensemble"] = {"members": members, **figures_under_rules(
            true_indices(shared), outputs.probs.get(ENSEMBLE, outputs.probs[members[0]]),
            ensemble_guard_score([outputs.guard_scores[n] for n in members],
                                 [registry.cards[n].get("guard") for n in members]),
            shared["classes"], ensemble_record_for(registry.ensemble_record, members),
            args.bootstrap)}
    return report


def print_evaluation(report: dict) -> None:
    for name, m in report.items():
        auc = "n/a" if m["auc_ovr"] is None else f"{m['auc_ovr']:.3f}"
        if name == "ensemble":
            name = f"ensemble (mean of {', '.join(m['members'])})"
        print(f"{name}: n={m['n']} accuracy {m['accuracy']:.3f} balanced_accuracy "
              f"{m['balanced_accuracy']:.3f} macro_f1 {m['macro_f1']:.3f} weighted_f1 "
              f"{m['weighted_f1']:.3f} top3 {m['top3_accuracy']:.3f} auc_ovr {auc} "
              f"ece {m['ece']:.3f}")
        print(f"  {referral_summary(m['referral'])}")
        if m["guard_flagged"] is not None:
            print(f"  input guard: flags {m['guard_flagged']:.3f} of these images as not "
                  "dermoscopic")


def cmd_evaluate(args, registry):
    from skin.scores import ENSEMBLE, Scores, card_identity, score_in_chunks
    cards = chosen_cards(registry, args.model)
    codes = list(dict.fromkeys(code for card in cards for code in card["classes"]))
    labels = read_labels(args.labels, args.id_column, args.label_column, codes)
    files, missing = find_images(Path(args.images), labels.index.tolist())
    if missing:
        raise UsageError(f"{len(missing)} listed images have no file in {args.images}: "
                         f"{', '.join(missing[:5])}")
    cards = fitting_cards(cards, labels, args.model)
    loaded, unavailable = predictors(cards, args.model)
    progress(f"predicting {len(labels)} images with {', '.join(p.name for p in loaded)} ...")
    outputs = score_in_chunks(
        loaded, labels.index.tolist(), files.get, skip_unreadable=False,
        chunk=EVALUATION_CHUNK,
        on_progress=lambda done, total: progress(f"predicted {done} of {total} images"))
    members = [name for name in registry.ensemble_members() if name in outputs.probs]
    if len(members) > 1:
        outputs.add_ensemble(members)
    report = evaluation_report(args, registry, loaded, labels, outputs, members)
    comparison = None
    if args.compare:
        # Every model that shares the first one's classes (the ensemble's, as listed).
        probs, classes = outputs.probs, loaded[0].classes
        compared = [n for n in probs if n == ENSEMBLE or registry.cards[n]["classes"] == classes]
        scored = Scores(
            f"{args.labels} ({len(labels)} images)", classes, labels.index.tolist(),
            labels.tolist(), {n: probs[n] for n in compared},
            {n: outputs.seconds[n] / len(labels) for n in compared},
            {p.name: card_identity(p.card) for p in loaded if p.name in compared},
            members if ENSEMBLE in compared else [])
        comparison = compare(scored, args.bootstrap, args.out)
    status = 1 if unavailable else 0
    if args.json:
        from skin.comparison import report_as_json
        print(json.dumps({"models": report, "unavailable_models": unavailable,
                          **({"comparison": report_as_json(comparison)} if comparison else {})},
                         indent=1))
    else:
        print_evaluation(report)
        if comparison:
            from skin.comparison import format_report
            print("\n" + format_report(comparison))
    return status


def compare(scored, n_resamples: int, out: str | None) -> dict:
    """The comparator's tables for the scored models, written to `out` as CSV (with the
    per-image probabilities) when given."""
    from skin.comparison import comparison_report
    found = comparison_report(scored.y, scored.probs, scored.classes, n_resamples=n_resamples)
    if out:
        folder = Path(out)
        scored.write(folder / "predictions.csv")
        found["per_class_recall"].to_csv(folder / "per_class_recall.csv", index_label="model")
        found["paired_differences"].to_csv(folder / "paired_differences.csv", index=False)
    return found


def referral_summary(referral: dict | None) -> str:
    """The referral rule's sensitivity and specificity on the images, with intervals."""
    if referral is None:
        return "referral: no rule (the card has no referral threshold)"
    intervals = referral.get("intervals_95") or {}

    def rate(key):
        if referral[key] is None:
            return "n/a"
        ci = intervals.get(key)
        return f"{referral[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    return (f"referral (P(malignant) >= {referral['threshold']:.3f}): sensitivity "
            f"{rate('sensitivity')} on {referral['n_malignant']} malignant, specificity "
            f"{rate('specificity')} on {referral['n_benign']} benign")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m skin", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list the registered models")
    models.add_argument("--json", action="store_true")
    fetch_p = sub.add_parser("fetch", help="download and verify weights ahead of time")
    fetch_p.add_argument("--model", default="all")
    predict = sub.add_parser("predict", help="classify images")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--model", default="all", help="NAME, all, or ensemble")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--tta", action="store_true", help="test-time augmentation (8 views)")
    predict.add_argument("--json", action="store_true")
    ev = sub.add_parser("evaluate", help="metrics on a labelled image folder")
    ev.add_argument("--images", required=True)
    ev.add_argument("--labels", required=True)
    ev.add_argument("--id-column", default="image_id")
    ev.add_argument("--label-column", default="dx")
    ev.add_argument("--model", default="all",
                    help="NAME, all (each model, and the ensemble when there are two or "
                         "more), or ensemble")
    ev.add_argument("--bootstrap", type=int, default=200, help="resamples for 95%% intervals")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--compare", action="store_true", help="also per-class recall and the "
                    "paired differences of every pair of models (with McNemar's test)")
    ev.add_argument("--out", help="with --compare: write predictions.csv (per-image "
                    "probabilities), per_class_recall.csv and paired_differences.csv here")
    exp = sub.add_parser("export", help="write a model as TensorFlow Lite or ONNX, with "
                         "its card")
    exp.add_argument("--model", required=True, help="the model's name")
    exp.add_argument("--format", choices=("tflite", "onnx"), default="tflite")
    exp.add_argument("--out", default="exported", help="folder to write into (default: exported)")
    exp.add_argument("--float16", action="store_true",
                     help="TensorFlow Lite: store the weights as float16 (half the file)")
    results = sub.add_parser("results", help="the test figures of the registered models, "
                             "from their cards, as a Markdown table")
    results.add_argument("--update", nargs="+", default=[], metavar="FILE",
                         help="rewrite the table between its markers in these files")
    args = p.parse_args(argv)
    if args.command == "evaluate" and args.compare and args.bootstrap < 1:
        p.error("--compare needs --bootstrap of 1 or more (its paired intervals)")
    if args.command == "evaluate" and args.out and not args.compare:
        p.error("--out needs --compare")
    return args


def cmd_export(args, registry):
    from skin.export import ExportError, export
    card = registry.get(args.model)
    try:
        path = export(card, load_model(card), args.out, args.format, float16=args.float16)
    except ExportError as e:
        raise UsageError(str(e)) from None
    print(f"{path} ({path.stat().st_size / 2**20:.1f} MiB) and its card {path}.json")
    return 0


def cmd_results(args, registry):
    from skin.results import ResultsError, results_table, update
    try:
        table = results_table(registry)
        for path in args.update:
            print(f"{path}: {'updated' if update(path, table) else 'already current'}",
                  file=sys.stderr)
    except (ResultsError, OSError) as e:
        raise UsageError(str(e)) from None
    if not args.update:
        print(table)
    return 0


COMMANDS = {"models": cmd_models, "fetch": cmd_fetch, "predict": cmd_predict,
            "evaluate": cmd_evaluate, "export": cmd_export, "results": cmd_results}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return COMMANDS[args.command](args, Registry.discover())
    except (*USER_ERRORS, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
