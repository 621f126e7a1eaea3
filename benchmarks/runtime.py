"""Model runtime: ONNX Runtime fp32 vs ONNX Runtime int8 (dynamic) vs torch eager, one run.

All three score the same trained model (the pipeline's models/ folder) on one thread each:
the fp32 graph as the service loads it (maas.serving.inference.create_session), an int8 copy made by
maas.export.quantize_int8 with the same session options, and the safetensors weights in
torch eager mode under inference_mode. Variants run in interleaved rounds (the order rotates
each round, so drift hits all alike) and medians are reported:

  * latency of one model call on 1, 64 and 1000 pre-featurized rows;
  * end-to-end predict on raw columns (featurize + call) for 1 and 1000 records, so the
    model's share of a request shows;
  * ROC AUC on the whole test window for each variant, int8 - fp32 AUC and max |int8 - fp32|;
  * graph / weight file sizes.

Prints a table, the ratios and the verdict of the rule "int8 on by default only if AUC drops
by less than 0.002 and it is faster per call at 1 and 1000 rows"; writes JSON.

    python benchmarks/runtime.py [--models models] [--test data/processed/test.parquet]
        [--rounds 25] [--seconds 0.04] [--per-channel] [--quantize-ops MatMul,Gather]
        [--no-pre-process] [--min-outputs 1]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from maas.pipeline.training.export import load_weights
from maas.pipeline.training.model import ModelConfig, ServingNet
from maas.pipeline.training.quantize import MIN_QUANTIZED_OUTPUTS, QUANTIZED_OP_TYPES, quantize_int8
from maas.serving.inference import (
    MODEL_CONFIG_FILE,
    ONNX_FILE,
    PREPROCESSING_FILE,
    WEIGHTS_FILE,
    create_session,
)
from maas.serving.preprocessing import RECORD_FIELDS, WEATHER_FIELDS, Preprocessor

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = ("ort_fp32", "ort_int8", "torch")
CALL_ROWS = (1, 64, 1000)
REQUEST_ROWS = (1, 1000)
MAX_AUC_DROP = 0.002  # the rule: int8 is on by default only below this AUC drop ...
RULE_ROWS = (1, 1000)  # ... and when it is faster per model call at these batch sizes
RATIO_KEYS = ("int8_over_fp32", "torch_over_fp32")
ALONE_ROWS = 1000  # test rows also scored one at a time (int8 batch dependence)

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def ort_scorer(path: Path) -> Scorer:
    session = create_session(path, threads=1)

    def score(cat: np.ndarray, num: np.ndarray) -> np.ndarray:
        return session.run(None, {"categorical": cat, "numeric": num})[0]

    return score


def torch_scorer(models: Path) -> Scorer:
    import torch

    torch.set_num_threads(1)
    net = ServingNet(
        load_weights(ModelConfig.load(models / MODEL_CONFIG_FILE), models / WEIGHTS_FILE)
    ).eval()

    def score(cat: np.ndarray, num: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(cat), torch.from_numpy(num)).numpy()

    return score


def alone_scores(score: Scorer, cat: np.ndarray, num: np.ndarray, rows: int) -> np.ndarray:
    """The first `rows` rows, each scored in a batch of one."""
    return np.concatenate([score(cat[i : i + 1], num[i : i + 1]) for i in range(rows)])


def request_columns(frame: Any, rows: int) -> dict[str, list[Any]]:
    """Raw columns as the service builds them from request records: lists, None = missing."""
    part = frame.iloc[:rows]
    return {
        name: [None if value != value else value for value in part[name].tolist()]
        for name in (*RECORD_FIELDS, *WEATHER_FIELDS)
        if name in part
    }


def per_call_seconds(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def calibrate(fn: Callable[[], Any], seconds: float) -> int:
    """Calls per timing sample so one sample lasts about `seconds` (timeit's autorange)."""
    fn()
    once = max(per_call_seconds(fn, 3), 1e-7)
    return max(1, int(seconds / once))


def time_cases(
    cases: dict[str, dict[str, Callable[[], Any]]], rounds: int, seconds: float
) -> dict[str, dict[str, list[float]]]:
    """Per-call seconds per round for every case x variant; variants interleave in each round.

    The variant order rotates every round, so none always runs first (cache, clock drift).
    """
    numbers = {
        case: {variant: calibrate(fn, seconds) for variant, fn in fns.items()}
        for case, fns in cases.items()
    }
    samples: dict[str, dict[str, list[float]]] = {
        case: {variant: [] for variant in fns} for case, fns in cases.items()
    }
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does
    try:
        for index in range(rounds):
            for case, fns in cases.items():
                order = list(fns)
                order = order[index % len(order) :] + order[: index % len(order)]
                for variant in order:
                    samples[case][variant].append(
                        per_call_seconds(fns[variant], numbers[case][variant])
                    )
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def iqr(values: list[float]) -> float:
    low, high = np.percentile(values, [25, 75])
    return float(high - low)


def paired_ratio(a: list[float], b: list[float]) -> dict[str, float]:
    """Median of per-round a/b and the share of rounds where a was faster than b."""
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return {
        "median": statistics.median(ratios),
        "a_faster_share": sum(r < 1 for r in ratios) / len(ratios),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import onnxruntime
    import pandas as pd
    import torch
    from sklearn.metrics import roc_auc_score

    started = time.perf_counter()
    models, test_path = Path(args.models), Path(args.test)
    frame = pd.read_parquet(test_path)
    labels = frame["label"].to_numpy()
    pre = Preprocessor.from_dict(json.loads((models / PREPROCESSING_FILE).read_text()))
    cat, num = pre.transform(frame)
    op_types = tuple(op for op in args.quantize_ops.split(",") if op)

    with tempfile.TemporaryDirectory(prefix="maas-runtime-") as scratch:
        int8_path = Path(scratch) / "model.int8.onnx"
        t0 = time.perf_counter()
        quantize_int8(
            models / ONNX_FILE,
            int8_path,
            op_types=op_types,
            per_channel=args.per_channel,
            pre_process=args.pre_process,
            min_outputs=args.min_outputs,
        )
        quantize_s = time.perf_counter() - t0
        int8_bytes = int8_path.stat().st_size
        import onnx

        int8_ops = dict(
            sorted(Counter(node.op_type for node in onnx.load(str(int8_path)).graph.node).items())
        )
        scorers: dict[str, Scorer] = {
            "ort_fp32": ort_scorer(models / ONNX_FILE),
            "ort_int8": ort_scorer(int8_path),
            "torch": torch_scorer(models),
        }

    # Accuracy on the whole test window.
    probs = {name: np.asarray(score(cat, num), dtype=np.float64) for name, score in scorers.items()}
    auc = {name: float(roc_auc_score(labels, p)) for name, p in probs.items()}
    # int8 activations are quantized with the range of the whole batch: the same record
    # scores differently alone than inside a batch (fp32 does not).
    alone = alone_scores(scorers["ort_int8"], cat, num, ALONE_ROWS)
    in_batch = probs["ort_int8"][:ALONE_ROWS]
    accuracy: dict[str, Any] = {
        "rows": len(labels),
        "positive_rate": float(labels.mean()),
        "roc_auc": auc,
        "auc_change_int8_minus_fp32": auc["ort_int8"] - auc["ort_fp32"],
        "max_abs_diff_int8_fp32": float(np.max(np.abs(probs["ort_int8"] - probs["ort_fp32"]))),
        "mean_abs_diff_int8_fp32": float(np.mean(np.abs(probs["ort_int8"] - probs["ort_fp32"]))),
        "max_abs_diff_torch_fp32": float(np.max(np.abs(probs["torch"] - probs["ort_fp32"]))),
        "int8_alone_vs_in_batch_max_abs_diff": float(np.max(np.abs(alone - in_batch))),
    }

    # Latency: model call on pre-featurized rows, and predict on raw request columns.
    def call(score: Scorer, c: np.ndarray, n: np.ndarray) -> Callable[[], Any]:
        return lambda: score(c, n)

    def request(score: Scorer, columns: dict[str, list[Any]]) -> Callable[[], Any]:
        return lambda: score(*pre.transform(columns))

    cases: dict[str, dict[str, Callable[[], Any]]] = {}
    for rows in CALL_ROWS:
        c, n = np.ascontiguousarray(cat[:rows]), np.ascontiguousarray(num[:rows])
        cases[f"call/{rows}"] = {name: call(score, c, n) for name, score in scorers.items()}
    for rows in REQUEST_ROWS:
        columns = request_columns(frame, rows)
        cases[f"predict/{rows}"] = {
            name: request(score, columns) for name, score in scorers.items()
        }
    samples = time_cases(cases, args.rounds, args.seconds)
    latency_us = {
        case: {name: statistics.median(values) * 1e6 for name, values in per_variant.items()}
        for case, per_variant in samples.items()
    }
    spread_pct = {  # (p75 - p25) / median of the rounds: how noisy each cell was
        case: {
            name: 100 * iqr(values) / statistics.median(values)
            for name, values in per_variant.items()
        }
        for case, per_variant in samples.items()
    }
    ratios = {
        case: {
            "int8_over_fp32": paired_ratio(per_variant["ort_int8"], per_variant["ort_fp32"]),
            "torch_over_fp32": paired_ratio(per_variant["torch"], per_variant["ort_fp32"]),
        }
        for case, per_variant in samples.items()
    }
    model_share = {  # model call / whole predict, same rows
        str(rows): {
            name: latency_us[f"call/{rows}"][name] / latency_us[f"predict/{rows}"][name]
            for name in scorers
        }
        for rows in REQUEST_ROWS
    }

    sizes = {
        "model.onnx": (models / ONNX_FILE).stat().st_size,
        "model.int8.onnx": int8_bytes,
        "weights.safetensors": (models / WEIGHTS_FILE).stat().st_size,
    }
    auc_drop = -accuracy["auc_change_int8_minus_fp32"]
    faster = {
        str(rows): ratios[f"call/{rows}"]["int8_over_fp32"]["median"] < 1 for rows in RULE_ROWS
    }
    int8_default = auc_drop < MAX_AUC_DROP and all(faster.values())
    reasons = [
        f"AUC drop {auc_drop:+.5f} {'<' if auc_drop < MAX_AUC_DROP else '>='} {MAX_AUC_DROP}",
        *(
            f"int8/fp32 per call at {rows} row(s) "
            f"{ratios[f'call/{rows}']['int8_over_fp32']['median']:.2f}x "
            f"({'faster' if faster[str(rows)] else 'not faster'}; int8 faster in "
            f"{ratios[f'call/{rows}']['int8_over_fp32']['a_faster_share']:.0%} of rounds)"
            for rows in RULE_ROWS
        ),
    ]
    result: dict[str, Any] = {
        "models": str(models),
        "test": str(test_path),
        "environment": {
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": 1,
        },
        "quantization": {
            "op_types": list(op_types),
            "per_channel": args.per_channel,
            "pre_process": args.pre_process,
            "min_outputs": args.min_outputs,
            "weight_type": "QInt8",
            "activations": "QUInt8, dynamic (per call)",
            "int8_graph_ops": int8_ops,
            "quantize_s": quantize_s,
        },
        "timing": {"rounds": args.rounds, "seconds_per_sample": args.seconds},
        "latency_us": latency_us,
        "latency_spread_pct": spread_pct,
        "ratios": ratios,
        "model_share_of_predict_proba": model_share,
        "accuracy": accuracy,
        "sizes_bytes": sizes,
        "verdict": {
            "rule": (
                f"int8 on by default only if AUC drops by less than {MAX_AUC_DROP} and it is "
                f"faster per call at {' and '.join(map(str, RULE_ROWS))} rows"
            ),
            "int8_default": int8_default,
            "auc_drop": auc_drop,
            "faster": faster,
            "reasons": reasons,
        },
        "elapsed_s": time.perf_counter() - started,
    }
    print_report(result)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    print(f"wrote {output}")
    return result


def print_report(result: dict[str, Any]) -> None:
    quant = result["quantization"]
    print(
        f"int8: ops {','.join(quant['op_types']) or 'all'}, per_channel={quant['per_channel']}, "
        f"pre_process={quant['pre_process']}, min_outputs={quant['min_outputs']}; "
        f"graph ops: "
        + ", ".join(f"{op} x{count}" for op, count in quant["int8_graph_ops"].items())
    )
    timing = result["timing"]
    print(
        f"latency: median of {timing['rounds']} interleaved rounds, 1 thread "
        f"(µs per call; ± = IQR/median of the rounds)"
    )
    header = ("case", *VARIANTS, "int8/fp32", "torch/fp32")
    print("{:<18} {:>16} {:>16} {:>16} {:>10} {:>10}".format(*header))
    for case, row in result["latency_us"].items():
        spread = result["latency_spread_pct"][case]
        cells = [f"{row[name]:>9.1f} ±{spread[name]:>3.0f}%" for name in VARIANTS]
        int8, torch_ = (result["ratios"][case][k]["median"] for k in RATIO_KEYS)
        print(
            f"{case:<18} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {int8:>9.2f}x {torch_:>9.2f}x"
        )
    for rows, share in result["model_share_of_predict_proba"].items():
        print(
            f"model call share of predict at {rows} record(s): "
            + ", ".join(f"{name} {100 * value:.0f}%" for name, value in share.items())
        )
    acc = result["accuracy"]
    print(f"ROC AUC on {acc['rows']} test rows (positive rate {acc['positive_rate']:.3f}):")
    for name in VARIANTS:
        print(f"  {name:<9} {acc['roc_auc'][name]:.5f}")
    print(
        f"  int8 - fp32 AUC {acc['auc_change_int8_minus_fp32']:+.5f}; max |int8 - fp32| "
        f"{acc['max_abs_diff_int8_fp32']:.4f} (mean {acc['mean_abs_diff_int8_fp32']:.5f}); "
        f"max |torch - fp32| {acc['max_abs_diff_torch_fp32']:.2g}"
    )
    print(
        f"  int8 row alone vs in the full batch: max |diff| "
        f"{acc['int8_alone_vs_in_batch_max_abs_diff']:.4f} (first {ALONE_ROWS} rows)"
    )
    print(
        "sizes: "
        + ", ".join(f"{name} {size / 1024:.1f} KiB" for name, size in result["sizes_bytes"].items())
    )
    verdict = result["verdict"]
    print(
        f"verdict: int8 {'ON' if verdict['int8_default'] else 'OFF'} by default "
        f"({'; '.join(verdict['reasons'])})"
    )
    print(f"elapsed {result['elapsed_s']:.1f}s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--test", type=Path, default=ROOT / "data/processed/test.parquet")
    parser.add_argument("--output", type=Path, default=ROOT / "reports/benchmarks/runtime.json")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved timing rounds")
    parser.add_argument("--seconds", type=float, default=0.04, help="seconds per timing sample")
    parser.add_argument(
        "--quantize-ops",
        default=",".join(QUANTIZED_OP_TYPES),
        help="op types quantize_int8 quantizes (Gemm nodes count as MatMul)",
    )
    parser.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--pre-process", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--min-outputs",
        type=int,
        default=MIN_QUANTIZED_OUTPUTS,
        help="linear layers with fewer output features stay fp32 (1: quantize all)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
