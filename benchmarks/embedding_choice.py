"""How `model.numeric_embeddings.kind: auto` chooses, measured against the test windows it
never sees: for each trained corpus project (benchmarks/corpus.py's workdir), both candidates
(`none`, `piecewise_linear`) trained as the train stage trains them (same rows, seed, epochs,
decision rule), each scored on the validation slice and on the test window (the torch
network's outputs; the run's evaluation scores the exported ONNX graph, parity 1e-5), and
what each selection rule would keep:

  * `validation`: maas's rule (training.candidates): the better validation score;
  * `one_se`: the one-standard-error rule (ESL §7.10) in bootstrap form: the embeddings only
    where their paired-bootstrap lead on validation is clear (its lower bound at one-sided
    16%, about one standard error below the lead, above zero);
  * `none` / `piecewise_linear`: always that one.

Per rule: the mean test score over the tables, and the regret (the test score given up
against the better of the two on the test window, summed; lower is better).

    python benchmarks/embedding_choice.py --workdir /tmp/corpus/X [--datasets a,b]
        [--output reports/embedding-choice.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RULES = ("validation", "one_se", "none", "piecewise_linear")
ONE_SE = 0.16  # one-sided level of a bound about one standard error from the estimate


def measure(project: Path, task: str, checkpoints: Path) -> dict[str, Any]:
    """Both candidates of one project, trained and scored on validation and test."""
    with contextlib.chdir(project):  # the project's relative paths (data/processed, ...)
        return _measure(task, checkpoints)


def _measure(task: str, checkpoints: Path) -> dict[str, Any]:
    from maas.config import load_params
    from maas.config.kinds import METRICS, better, gate_metric
    from maas.pipeline.data.windows import TEST_FILE, read_window
    from maas.pipeline.evaluation.difference import metric_value
    from maas.pipeline.training.candidates import (
        AUTO_EMBEDDINGS,
        candidate_models,
        chosen,
        with_lead,
    )
    from maas.pipeline.training.fit import TensorSet, predict
    from maas.pipeline.training.imbalance import decide_on_validation
    from maas.pipeline.training.job import train_candidate, validation_labels
    from maas.pipeline.training.model import Head
    from maas.pipeline.training.prepare import prepare_training

    params = load_params(Path("params.yaml"), task=task)
    kind = params.data.label.kind
    metric = gate_metric(kind, params.promotion.metric).name
    prepared = prepare_training(params.data, params.features, params.model, params.train)
    labels = validation_labels(prepared)
    test = read_window(params.data, TEST_FILE)
    cat, num = prepared.preprocessor.transform(test)
    head = Head.of(prepared.config)
    test_set = TensorSet.from_numpy(cat, num, head.scale(test["label"].to_numpy()))
    test_labels = head.unscale(test_set.labels.numpy())
    trained, test_scores = [], dict[str, float]()
    auto = params.model.numeric_embeddings.model_copy(update={"kind": "auto"})
    for model in candidate_models(params.model.model_copy(update={"numeric_embeddings": auto})):
        embedding = model.numeric_embeddings.kind
        one = train_candidate(
            prepared, model, params.train, checkpoints / f"{task}-{embedding}.pt", metric=metric
        )
        (checkpoints / f"{task}-{embedding}.pt").unlink(missing_ok=True)
        network = one.result.model
        decide_on_validation(network, one.predictions, prepared.validation.labels.numpy(), metric)
        outputs = predict(network, test_set, mixed_precision=False).numpy()
        test_scores[embedding] = metric_value(metric, kind, test_labels, outputs)
        trained.append(one)
    challenger = with_lead(trained[1], trained[0], labels, metric, kind, alpha=ONE_SE)
    records = [trained[0].candidate, challenger]
    picks = {
        "validation": AUTO_EMBEDDINGS[chosen(records, metric)],
        "one_se": AUTO_EMBEDDINGS[int(challenger.lead_low > 0)],
        "none": "none",
        "piecewise_linear": "piecewise_linear",
    }
    first, second = test_scores.values()
    best_test = second if better(METRICS[metric], second, first) > 0 else first
    return {
        "table": task,
        "metric": metric,
        "validation_rows": len(labels),
        "validation": {r.numeric_embedding: r.validation_score for r in records},
        "lead": challenger.lead,
        "lead_low": challenger.lead_low,
        "lead_high": challenger.lead_high,
        "test": test_scores,
        "picks": picks,
        "regret": {
            rule: better(METRICS[metric], best_test, test_scores[pick])
            for rule, pick in picks.items()
        },
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# How `auto` numeric embeddings choose, against test windows it never sees",
        "",
        "Written by `python benchmarks/embedding_choice.py` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) "
        "over a `benchmarks/corpus.py` run's projects: both candidates trained as the train stage "
        "trains them, scored on the validation slice (which chooses) and on the test window "
        "(which judges). `validation` is maas's rule (the better validation score); `one_se` keeps "
        "the embeddings only where their paired-bootstrap lead's 16th percentile is above zero.",
        "",
        "| table | metric | validation rows | validation none / PLE | PLE's lead [16%, 84%] "
        "| test none / PLE | kept (validation) | kept (one SE) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        v, t = row["validation"], row["test"]
        lines.append(
            f"| {row['table']} | {row['metric']} | {row['validation_rows']:,} "
            f"| {v['none']:.4f} / {v['piecewise_linear']:.4f} "
            f"| {row['lead']:+.4f} [{row['lead_low']:+.4f}, {row['lead_high']:+.4f}] "
            f"| {t['none']:.4f} / {t['piecewise_linear']:.4f} "
            f"| {row['picks']['validation']} | {row['picks']['one_se']} |"
        )
    lines += [
        "",
        "| rule | regret summed over the tables (test score given up; lower is better) "
        "| tables where it kept the better on test |",
        "|---|---|---|",
    ]
    for rule in RULES:
        regret = sum(row["regret"][rule] for row in rows)
        right = sum(1 for row in rows if row["regret"][rule] <= 0)
        lines.append(f"| {rule} | {regret:.4f} | {right} of {len(rows)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="benchmarks/corpus.py's")
    parser.add_argument("--datasets", default="", help="names, comma-separated (default: all)")
    parser.add_argument("--output", type=Path, default=None, help="markdown; JSON beside it")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    names = [n for n in args.datasets.split(",") if n] or sorted(
        p.name for p in workdir.iterdir() if (p / "tasks").is_dir()
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="maas-choice-") as tmp:
        for name in names:
            try:
                row = measure(workdir / name, name, Path(tmp))
            except Exception as error:  # a table that cannot train is reported, not fatal
                print(f"{name}: {type(error).__name__}: {error}", file=sys.stderr)
                continue
            print(json.dumps(row), flush=True)
            rows.append(row)
    text = markdown(rows)
    print(text)
    if args.output:
        args.output.write_text(text)
        args.output.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
