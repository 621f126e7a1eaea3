"""Training loop: `maas.train.fit` vs a minimal hand-written PyTorch loop, and MLflow on vs off.

Same model (`TabularNet` from params.yaml), same tensors (the pipeline's own training window
and preprocessing from data/processed), same batch size, optimizer and epochs. Variants run
interleaved round by round (minimal, fit, fit + MLflow, minimal, ...) so machine drift hits
all of them alike; the medians are compared.

- minimal: randperm, split into batches, forward, BCE-with-logits, zero_grad, backward, step.
  Nothing else: no scheduler, validation, early stopping or checkpoints.
- fit: the pipeline's `fit` with everything it does (OneCycle, per-epoch validation loss and
  ROC AUC, best-weights copy), checkpoints off; timed end to end.
- fit + MLflow: the same, with the per-epoch metrics logged to a real MLflow run (the
  pipeline's asynchronous `EpochLogger` on a SQLite store in a temporary folder).

    python benchmarks/training.py [--project DIR] [--epochs 2] [--rounds 3]
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


def minimal_loop(config: Any, train: Any, batch_size: int, epochs: int, lr: float) -> float:
    """The baseline: what anyone would write by hand. Returns wall seconds."""
    import torch

    from maas.model import TabularNet

    torch.manual_seed(0)
    model = TabularNet(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    cat, num, y = train.categorical, train.numeric, train.labels
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for index in torch.split(torch.randperm(len(y)), batch_size):
            loss = loss_fn(model(cat[index], num[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def ours(params: Any, prepared: Any, epochs: int, mlflow_dir: Path | None) -> dict[str, float]:
    from maas.train import fit

    train_params = params.train.model_copy(
        update={"max_epochs": epochs, "patience": epochs + 1, "device": "cpu"}
    )
    callback = logger = None
    if mlflow_dir is not None:
        from maas.config import RegistryParams
        from maas.registry import start_pipeline_run

        registry = RegistryParams(
            tracking_uri=f"sqlite:///{mlflow_dir}/mlflow.db",
            artifact_root=mlflow_dir / "artifacts",
            experiment="bench-training",
            model_name="bench",
        )
        logger = start_pipeline_run(registry, {}, "bench").epoch_logger()
        callback = logger
    started = time.perf_counter()
    result = fit(
        prepared.config, train_params, prepared.train, prepared.validation, on_epoch_end=callback
    )
    if logger is not None:
        logger.flush()  # the run's metrics are written before the clock stops
    wall = time.perf_counter() - started
    return {"wall_s": wall, "train_only_samples_per_s": result.samples_per_second}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="folder with params.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    import os

    import torch

    from maas.config import load_params
    from maas.stages import prepare_training

    os.chdir(args.project)
    params = load_params(Path("params.yaml"), [])
    if params.train.num_threads:
        torch.set_num_threads(params.train.num_threads)
    prepared = prepare_training(params.data, params.features, params.model, params.train)
    rows = len(prepared.train)
    batch, lr = params.train.batch_size, params.train.learning_rate
    samples = rows * args.epochs
    walls: dict[str, list[float]] = {"minimal": [], "fit": [], "fit_mlflow": []}
    fit_train_only: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:

        def run_variant(name: str, round_: int) -> None:
            if name == "minimal":
                walls[name].append(
                    minimal_loop(prepared.config, prepared.train, batch, args.epochs, lr)
                )
            elif name == "fit":
                run = ours(params, prepared, args.epochs, None)
                walls[name].append(run["wall_s"])
                fit_train_only.append(run["train_only_samples_per_s"])
            else:
                mlflow_dir = Path(tmp) / f"r{round_}"
                walls[name].append(ours(params, prepared, args.epochs, mlflow_dir)["wall_s"])

        names = list(walls)
        for round_ in range(args.rounds):
            # The order rotates every round: no variant always runs first (cold) or last.
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                run_variant(name, round_)
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{k} {samples / v[-1]:,.0f} samples/s" for k, v in walls.items())
            )
    rate = {k: samples / statistics.median(v) for k, v in walls.items()}
    result = {
        "rows": rows,
        "epochs": args.epochs,
        "batch_size": batch,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "samples_per_s": rate,
        "fit_train_epochs_only_samples_per_s": statistics.median(fit_train_only),
        # the framework tax per step: fit's training epochs (its own clock, validation
        # excluded) against the minimal loop, which does nothing but train
        "ratio_fit_vs_minimal": statistics.median(fit_train_only) / rate["minimal"],
        # everything fit does (per-epoch validation ROC AUC, best-weights copy) included
        "ratio_fit_end_to_end_vs_minimal": rate["fit"] / rate["minimal"],
        "mlflow_slowdown": 1 - rate["fit_mlflow"] / rate["fit"],
    }
    print(f"minimal loop       {rate['minimal']:>10,.0f} samples/s (median of {args.rounds})")
    print(
        f"fit, train epochs {result['fit_train_epochs_only_samples_per_s']:>10,.0f} samples/s  "
        f"ratio {result['ratio_fit_vs_minimal']:.3f}x  (goal >= 0.95x)"
    )
    print(
        f"fit, end to end   {rate['fit']:>10,.0f} samples/s  "
        f"ratio {result['ratio_fit_end_to_end_vs_minimal']:.3f}x  (incl. per-epoch validation)"
    )
    print(
        f"fit + MLflow      {rate['fit_mlflow']:>10,.0f} samples/s  "
        f"slower by {100 * result['mlflow_slowdown']:.2f}%  (goal <= 2%)"
    )
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
