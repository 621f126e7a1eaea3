"""Model kinds side by side on the task's test partitions (December for flight-delay): each
configuration trained with several seeds next to logistic regression and HistGradientBoosting
fitted on the same rows and features, with training time per epoch and the ONNX graph's
single-record latency (the serving path's model call, on the CPU).

Every choice is made on the validation slice (the latest `train.validation_fraction` of the
training window), never on the test rows: `--search-trials N` first runs an Optuna study over
`--search-kind`'s default space (`maas tune`'s own objective, TPE and median pruning; no MLflow),
and its best values become the configuration `tuned`. The test score of each configuration is
then its mean over `--seeds`.

    python benchmarks/model_kinds.py [--params params.yaml] [--task NAME] [--seeds 1 2 3]
        [--device auto]
        [--config 'NAME=key=value key=value' ...] [--search-kind tabm --search-trials 40
        --search-timeout 300 --search-set key=value ...] [--output reports/model-kinds.json]

Without --config: `mlp` and `tabm` (params.yaml's settings of each kind). Needs the validated
windows in data/processed (`maas run`, or `maas stage validate`). Writes the JSON after every
step, so a run stopped early keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def onnx_latency_ms(model: Any, cat: Any, num: Any, calls: int = 2000) -> dict[str, float]:
    """p50/p99 of one-record calls of the exported graph through the serving path's session."""
    import numpy as np

    from maas.pipeline.training.export import export_onnx
    from maas.serving.inference import create_session

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, cat, num)
        session = create_session(path)
        feeds = [
            {
                "categorical": cat[i : i + 1].astype(np.int64),
                "numeric": num[i : i + 1].astype(np.float32),
            }
            for i in range(min(calls, len(cat)))
        ]
        for feed in feeds[:100]:
            session.run(None, feed)
        times = []
        for i in range(calls):
            started = time.perf_counter()
            session.run(None, feeds[i % len(feeds)])
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50": times[len(times) // 2], "p99": times[int(len(times) * 0.99)]}


def train_and_score(
    params: Any, prepared: Any, test: Any, latency: bool, trace: bool = False, calls: int = 2000
) -> dict[str, Any]:
    """One configuration, one seed: early stopping on the validation slice, the test score of
    the chosen epoch (full precision, as the ONNX graph computes it). `trace`: also the test
    score of every epoch (read back from the epoch's checkpoint), to see what other ways of
    choosing the epoch would have given; nothing is chosen by it."""
    from maas.config.kinds import SCORE
    from maas.pipeline.evaluation.metrics import compute_metrics
    from maas.pipeline.training.fit import TensorSet, predict
    from maas.pipeline.training.tune import fit_trial

    kind = params.data.label.kind
    cat, num = prepared.preprocessor.transform(test)
    labels = test["label"].to_numpy()
    rows = TensorSet.from_numpy(cat, num, labels)

    def metrics(model: Any) -> dict[str, float]:
        return compute_metrics(labels, predict(model, rows, mixed_precision=False).numpy(), kind)

    def score(model: Any) -> float:
        return metrics(model)[SCORE[kind]]

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "epoch.pt" if trace else None
        by_epoch: list[float] = []

        def on_epoch(metrics: dict[str, float]) -> None:
            if checkpoint is not None and checkpoint.exists():  # the epoch before this one
                by_epoch.append(score(_from_checkpoint(params, prepared, checkpoint)))

        started = time.perf_counter()
        result, val_score, best_epoch = fit_trial(
            _free_trial(), params, prepared, on_epoch, checkpoint_path=checkpoint
        )
        seconds = time.perf_counter() - started
        if checkpoint is not None:
            by_epoch.append(score(_from_checkpoint(params, prepared, checkpoint)))
    test_metrics = metrics(result.model)
    optional = prepared.preprocessor.optional_inputs
    if optional:  # the same flights with the optional inputs left out, as a request may
        cat_absent, num_absent = prepared.preprocessor.transform(test.drop(columns=optional))
        absent = predict(
            result.model,
            TensorSet.from_numpy(cat_absent, num_absent, labels),
            mixed_precision=False,
        )
        test_metrics["optional_absent"] = compute_metrics(labels, absent.numpy(), kind)[SCORE[kind]]
    row: dict[str, Any] = {
        "seed": params.train.seed,
        "test": test_metrics[SCORE[kind]],
        "test_metrics": test_metrics,
        "validation": val_score,
        "best_epoch": best_epoch,
        "epochs": len(result.history),
        "seconds": seconds,
        "seconds_per_epoch": len(prepared.train) / result.samples_per_second,
        "samples_per_second": result.samples_per_second,
        "device": result.device,
    }
    if trace:
        metric = f"val_{SCORE[kind]}"
        by_score = max(result.history, key=lambda h: h[metric])
        row.update(
            {
                "test_by_epoch": by_epoch,
                "val_by_epoch": [h[metric] for h in result.history],
                "val_loss_by_epoch": [h["val_loss"] for h in result.history],
                "test_at_best_val_score": by_epoch[int(by_score["epoch"]) - 1],
                "test_last_epoch": by_epoch[-1],
            }
        )
    if latency:
        row["onnx_ms"] = onnx_latency_ms(result.model, cat, num, calls)
    return row


def _from_checkpoint(params: Any, prepared: Any, path: Path) -> Any:
    """The network as the checkpoint at `path` holds it (weights only, never pickled code)."""
    from maas.pipeline.training.checkpoints import load_checkpoint
    from maas.pipeline.training.model import Head, build_network, model_config_for

    config = model_config_for(
        params.model,
        prepared.preprocessor.cardinalities,
        prepared.train.numeric.numpy(),
        Head.of(prepared.config),
    )
    net = build_network(config)
    state = load_checkpoint(path)
    assert state is not None, f"unreadable checkpoint {path}"
    net.load_state_dict(state["model"])
    return net.eval()


def _free_trial() -> Any:
    """A trial of a throw-away study that never prunes: fit_trial's reports go nowhere."""
    import optuna

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    return study.ask()


def search(params: Any, prepared: Any, trials: int, timeout_s: float) -> dict[str, Any]:
    """`maas tune`'s study (space, sampler, pruner, objective) in memory, without MLflow."""
    import optuna

    from maas.pipeline.training.tune import (
        counts,
        decoded,
        fit_trial,
        search_space,
        suggest,
        with_values,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = search_space(params)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=params.tune.seed),
        pruner=optuna.pruners.MedianPruner(n_warmup_steps=params.tune.warmup_epochs),
    )
    log: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        values = {key: suggest(trial, key, spec) for key, spec in space.items()}
        started = time.perf_counter()
        try:
            value = fit_trial(trial, with_values(params, values), prepared)[1]
        finally:
            log.append(
                {
                    "trial": trial.number,
                    "values": values,
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
        print(f"  trial {trial.number}: {value:.4f} {values}", flush=True)
        return value

    study.optimize(objective, n_trials=trials, timeout=timeout_s)
    return {
        "space": {k: v.model_dump() for k, v in space.items()},
        "trials": counts(study),
        "best_value": study.best_value,
        "best_values": decoded(study.best_params, space),
        "log": [
            {**entry, "value": t.value, "state": t.state.name}
            for entry, t in zip(log, study.trials, strict=False)
        ],
    }


def latencies(configs: dict[str, Any], prepared: Any, calls: int = 2000) -> dict[str, Any]:
    """The one-record latency of each configuration's ONNX graph, untrained (the latency does
    not depend on the weights): what `make bench` reports per model kind, in seconds of CPU."""
    from maas.pipeline.training.model import Head, build_network, model_config_for

    cat = prepared.validation.categorical.numpy()
    num = prepared.validation.numeric.numpy()
    out: dict[str, Any] = {}
    for name, params in configs.items():
        numeric, head = prepared.train.numeric.numpy(), Head.of(prepared.config)
        config = model_config_for(params.model, prepared.preprocessor.cardinalities, numeric, head)
        network = build_network(config).eval()
        out[name] = {
            "onnx_ms": onnx_latency_ms(network, cat, num, calls),
            "parameters": sum(p.numel() for p in network.parameters()),
        }
        print(f"{name}: one record {out[name]['onnx_ms']['p50']:.3f} ms (p50)", flush=True)
    return out


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    tests = [r["test"] for r in rows]
    return {
        "test_mean": statistics.fmean(tests),
        "test_min": min(tests),
        "test_max": max(tests),
        "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in rows),
        **{
            f"{key}_mean": statistics.fmean(r[key] for r in rows)
            for key in ("test_at_best_val_score", "test_last_epoch")
            if key in rows[0]
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--task", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--config", action="append", default=[], metavar="NAME=OVERRIDES")
    parser.add_argument("--set", action="append", default=[], help="applies to every config")
    parser.add_argument("--search-kind", default=None)
    parser.add_argument("--search-trials", type=int, default=0)
    parser.add_argument("--search-timeout", type=float, default=600.0)
    parser.add_argument("--search-set", action="append", default=[])
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--trace", action="store_true", help="test score of every epoch too")
    parser.add_argument("--output", type=Path, default=ROOT / "reports/model-kinds.json")
    parser.add_argument("--latency-only", action="store_true", help="no training: ONNX latency")
    parser.add_argument("--calls", type=int, default=2000, help="one-record calls timed")
    args = parser.parse_args(argv)

    import pandas as pd

    from maas.config import load_params
    from maas.config.kinds import SCORE, baseline_names
    from maas.pipeline.data.windows import TEST_FILE, read_window
    from maas.pipeline.evaluation.metrics import compute_metrics, fit_baselines
    from maas.pipeline.training.prepare import prepare_training

    def params_for(overrides: list[str]) -> Any:
        return load_params(  # each kind as named, on any host (no model.cpu_kind)
            args.params,
            ["model.cpu_kind=null", *overrides, f"train.device={args.device}", *args.set],
            task=args.task,
        )

    base = params_for([])
    kind = base.data.label.kind
    prepared = prepare_training(base.data, base.features, base.model, base.train)
    test = read_window(base.data, TEST_FILE)
    labels = test["label"].to_numpy()
    configs = dict(c.split("=", 1) for c in args.config) or {
        "mlp": "model.kind=mlp",
        "tabm": "model.kind=tabm",
    }
    out: dict[str, Any] = {
        "task": base.task,
        "metric": SCORE[kind],
        "seeds": args.seeds,
        "train_rows": len(prepared.train),
        "validation_rows": len(prepared.validation),
        "test_rows": len(test),
        "configs": {},
        "baselines": {},
    }

    def save() -> None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(out, indent=1, default=str))

    if args.latency_only:
        chosen = {name: params_for(spec.split()) for name, spec in configs.items()}
        out["latency"] = latencies(chosen, prepared, args.calls)
        save()
        return out
    if args.search_trials:
        search_kind = args.search_kind or base.model.kind
        print(f"search: {args.search_trials} trials of {search_kind}", flush=True)
        overrides = [f"model.kind={search_kind}", *args.search_set]
        found = search(params_for(overrides), prepared, args.search_trials, args.search_timeout)
        out["search"] = {"kind": search_kind, "overrides": args.search_set, **found}
        values = [
            f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in found["best_values"].items()
        ]
        configs = {"tuned": " ".join([*overrides, *values]), **configs}  # measured first
        save()
    if not args.no_baselines:
        fit_rows = prepared.fit_rows
        train_cat, train_num = prepared.preprocessor.transform(fit_rows)
        test_cat, test_num = prepared.preprocessor.transform(test)
        names = baseline_names(["logistic_regression", "hist_gradient_boosting"], kind)
        for seed in args.seeds:
            preds = fit_baselines(
                names,
                train_cat,
                train_num,
                fit_rows["label"].to_numpy(),
                test_cat,
                test_num,
                seed,
                kind,
                len(base.data.label.classes),
            )
            for name, p in preds.items():
                scores = compute_metrics(labels, p, kind)
                out["baselines"].setdefault(name, []).append(
                    {"seed": seed, "test": scores[SCORE[kind]], "test_metrics": scores}
                )
        save()
    for name, spec in configs.items():
        rows = []
        for i, seed in enumerate(args.seeds):
            chosen = params_for([*spec.split(), f"train.seed={seed}"])
            latency = i == 0 and not args.no_latency
            rows.append(train_and_score(chosen, prepared, test, latency, args.trace, args.calls))
            traced = {
                k: round(v, 4)
                for k, v in rows[-1].items()
                if k.startswith("test_") and isinstance(v, float)
            }
            print(f"{name} seed {seed}: {rows[-1]['test']:.4f} {traced}", flush=True)
            out["configs"][name] = {"overrides": spec, "runs": rows, **summary(rows)}
            save()
    table = pd.DataFrame(
        [
            {
                "model": n,
                "mean": c["test_mean"],
                "min": c["test_min"],
                "max": c["test_max"],
                "s/epoch": c["seconds_per_epoch"],
                "onnx p50 ms": c["runs"][0].get("onnx_ms", {}).get("p50", float("nan")),
            }
            for n, c in out["configs"].items()
        ]
        + [
            {
                "model": n,
                "mean": statistics.fmean(r["test"] for r in rs),
                "min": min(r["test"] for r in rs),
                "max": max(r["test"] for r in rs),
            }
            for n, rs in out["baselines"].items()
        ]
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return out


if __name__ == "__main__":
    main()
