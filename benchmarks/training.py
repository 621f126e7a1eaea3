"""Training loop: the pipeline's `fit` vs a minimal hand-written PyTorch loop; MLflow on vs off.

Same model (the MLP params.yaml shapes), same tensors (the pipeline's own training window
and preprocessing from data/processed), same batch size, optimizer, loss (the task kind's:
`maas.pipeline.training.loss.head_loss`) and epochs. Variants run
interleaved round by round (minimal, fit, fit + MLflow, minimal, ...) so machine drift hits
all of them alike; the medians are compared.

- minimal: randperm, split into batches, forward, the loss, zero_grad, backward, step.
  Nothing else: no scheduler, validation, early stopping or checkpoints.
- fit: the pipeline's `fit` with everything it does (OneCycle, per-epoch validation loss and
  ROC AUC, best-weights copy), checkpoints off; timed end to end.
- fit + MLflow: the same, with the per-epoch metrics logged to a real MLflow run (the
  pipeline's asynchronous `EpochLogger` on a SQLite store in a temporary folder).

    python benchmarks/training.py [--project DIR] [--task NAME] [--epochs 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


Loss = Callable[[Any, Any], Any]  # (the network's output, the labels) -> the loss tensor


def task_loss(config: Any, train: Any) -> Loss:
    """The task kind's loss, as `fit` computes it (BCE on the logit for a binary label)."""
    from maas.pipeline.training.loss import head_loss

    return lambda out, labels: head_loss(config.head, out, labels, train.regression_loss)


def minimal_loop(
    config: Any, train: Any, batch_size: int, epochs: int, lr: float, loss_fn: Loss
) -> float:
    """The baseline: what anyone would write by hand. Returns wall seconds."""
    import torch

    from maas.pipeline.training.model import build_network

    torch.manual_seed(0)
    model = build_network(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
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


def dataloader_loop(
    config: Any, train: Any, batch_size: int, epochs: int, lr: float, loss_fn: Loss, device: str
) -> float:
    """The textbook input pipeline: a TensorDataset in host memory, a shuffling DataLoader,
    every batch copied to the device. Otherwise the minimal loop. Returns wall seconds."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from maas.pipeline.training.model import build_network

    torch.manual_seed(0)
    model = build_network(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    dataset = TensorDataset(train.categorical, train.numeric, train.labels)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, pin_memory=device == "cuda")
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for cat, num, y in loader:
            cat, num, y = cat.to(device), num.to(device), y.to(device)
            loss = loss_fn(model(cat, num), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def ours(
    params: Any,
    prepared: Any,
    epochs: int,
    mlflow_dir: Path | None,
    device: str = "cpu",
    mixed_precision: bool = True,
) -> dict[str, float]:
    from maas.pipeline.training.fit import fit

    update = {
        "max_epochs": epochs,
        "patience": epochs + 1,
        "device": device,
        "mixed_precision": mixed_precision,
    }
    train_params = params.train.model_copy(update=update)
    logger: Any = None
    in_logging: list[float] = []
    if mlflow_dir is not None:
        from maas.config import RegistryParams
        from maas.tracking.runs import start_pipeline_run

        registry = RegistryParams(
            tracking_uri=f"sqlite:///{mlflow_dir}/mlflow.db",
            artifact_root=mlflow_dir / "artifacts",
            experiment="bench-training",
            model_name="bench",
        )
        logger = start_pipeline_run(registry, {}, "bench").epoch_logger()

    def timed_logger(metrics: dict[str, float]) -> None:  # the logger, with a stopwatch
        began = time.perf_counter()
        logger(metrics)
        in_logging.append(time.perf_counter() - began)

    callback = timed_logger if logger is not None else None
    started = time.perf_counter()
    result = fit(
        prepared.config, train_params, prepared.train, prepared.validation, on_epoch_end=callback
    )
    if logger is not None:
        began = time.perf_counter()
        logger.flush()  # the run's metrics are written before the clock stops
        in_logging.append(time.perf_counter() - began)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "train_only_samples_per_s": result.samples_per_second,
        "logging_s": sum(in_logging),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="folder with params.yaml")
    parser.add_argument("--task", default=None, help="the task (default: params.yaml's)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    import os

    import torch

    from maas.config import load_params
    from maas.pipeline.training.prepare import prepare_training

    os.chdir(args.project)
    # the MLP: the minimal loops fit one output per row (TabM has one per member)
    params = load_params(Path("params.yaml"), ["model.kind=mlp"], task=args.task)
    if params.train.num_threads:
        torch.set_num_threads(params.train.num_threads)
    prepared = prepare_training(params.data, params.features, params.model, params.train)
    rows = len(prepared.train)
    batch, lr = params.train.batch_size, params.train.learning_rate
    loss = task_loss(prepared.config, params.train)
    samples = rows * args.epochs
    walls: dict[str, list[float]] = {"minimal": [], "dataloader": [], "fit": [], "fit_mlflow": []}
    cuda = torch.cuda.is_available()
    if cuda:  # resident + bf16 (what fit does on a GPU) vs fp32 vs the DataLoader path
        walls |= {"cuda_fit_bf16": [], "cuda_fit_fp32": [], "cuda_dataloader_fp32": []}
    fit_train_only: list[float] = []
    logging_share: list[float] = []  # time the training thread spent in MLflow calls
    with tempfile.TemporaryDirectory() as tmp:

        def run_variant(name: str, round_: int) -> None:
            if name == "minimal":
                walls[name].append(
                    minimal_loop(prepared.config, prepared.train, batch, args.epochs, lr, loss)
                )
            elif name in ("dataloader", "cuda_dataloader_fp32"):
                device = "cuda" if name.startswith("cuda") else "cpu"
                walls[name].append(
                    dataloader_loop(
                        prepared.config, prepared.train, batch, args.epochs, lr, loss, device
                    )
                )
            elif name.startswith("cuda_fit"):
                bf16 = name.endswith("bf16")
                run = ours(params, prepared, args.epochs, None, "cuda", mixed_precision=bf16)
                walls[name].append(run["wall_s"])
            elif name == "fit":
                run = ours(params, prepared, args.epochs, None)
                walls[name].append(run["wall_s"])
                fit_train_only.append(run["train_only_samples_per_s"])
            else:
                run = ours(params, prepared, args.epochs, Path(tmp) / f"r{round_}")
                walls[name].append(run["wall_s"])
                logging_share.append(run["logging_s"] / run["wall_s"])

        names = list(walls)
        for round_ in range(args.rounds):
            # The order rotates every round: no variant always runs first (cold) or last.
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
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
        # on vs off, wall clock: the goal's measure, but as noisy as the machine (+-3% here)
        "mlflow_slowdown": 1 - rate["fit_mlflow"] / rate["fit"],
        # tensors resident on the device vs the DataLoader input path
        "ratio_resident_vs_dataloader": rate["minimal"] / rate["dataloader"],
        # the same cost measured directly: the training thread's time inside the logger
        "mlflow_logging_share": statistics.median(logging_share),
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
        f"slower by {100 * result['mlflow_slowdown']:.2f}%  (goal <= 2%); time in the "
        f"logger itself: {100 * result['mlflow_logging_share']:.3f}% of the run"
    )
    print(
        f"DataLoader loop    {rate['dataloader']:>10,.0f} samples/s  resident tensors are "
        f"{result['ratio_resident_vs_dataloader']:.2f}x faster"
    )
    if cuda:
        result["gpu"] = torch.cuda.get_device_name(0)
        result["ratio_cuda_bf16_vs_fp32"] = rate["cuda_fit_bf16"] / rate["cuda_fit_fp32"]
        result["ratio_cuda_resident_vs_dataloader"] = (
            rate["cuda_fit_fp32"] / rate["cuda_dataloader_fp32"]
        )
        result["ratio_cuda_vs_cpu"] = rate["cuda_fit_bf16"] / rate["fit"]
        print(
            f"{result['gpu']}: fit bf16 {rate['cuda_fit_bf16']:,.0f} samples/s; bf16 / fp32 "
            f"{result['ratio_cuda_bf16_vs_fp32']:.2f}x (goal >= 1.3x where compute-bound); "
            f"resident / DataLoader {result['ratio_cuda_resident_vs_dataloader']:.2f}x "
            f"(goal >= 1.5x); GPU / CPU {result['ratio_cuda_vs_cpu']:.1f}x"
        )
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
