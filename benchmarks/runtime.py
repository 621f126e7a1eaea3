"""Model runtime: ONNX Runtime fp32 vs ONNX Runtime int8 (dynamic) vs torch eager, one run.

All three score the same trained model (the pipeline's models folder) on one thread each:
the fp32 graph as the service loads it (maas.serving.inference.create_session), an int8 copy
made by maas.pipeline.training.quantize.quantize_int8 with the same session options, and the
safetensors weights in torch eager mode under inference_mode. Variants run in interleaved
rounds (benchmarks/timing.py: the order rotates each round, so drift hits all alike) and
medians are reported:

  * latency of one model call on 1, 64 and 1000 pre-featurized rows;
  * end-to-end predict on raw columns (featurize + call) for 1 and 1000 records (the fields
    of the model's request spec), so the model's share of a request shows;
  * the task kind's score (binary ROC AUC, multiclass macro F1, regression R²) on the whole
    test window for each variant, int8 - fp32 score and max |int8 - fp32|;
  * graph / weight file sizes.

Prints a table, the ratios and the verdict of the rule "int8 on by default only if the score
drops by less than 0.002 and it is faster per call at 1 and 1000 rows"; writes JSON.

    python benchmarks/runtime.py [--models models] [--test data/processed/test.parquet]
        [--rounds 25] [--seconds 0.04] [--per-channel] [--quantize-ops MatMul,Gather]
        [--no-pre-process] [--min-outputs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from benchmarks.timing import iqr, paired_ratio, time_cases
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
from maas.serving.preprocessing import Preprocessor

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = ("ort_fp32", "ort_int8", "torch")
CALL_ROWS = (1, 64, 1000)
REQUEST_ROWS = (1, 1000)
MAX_SCORE_DROP = 0.002  # the rule: int8 is on by default only below this score drop ...
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


def request_fields(pre: Preprocessor) -> list[str]:
    """The fields a request record carries: the model's request spec (the task's), else the
    raw columns its preprocessing reads."""
    return pre.request.names if pre.request is not None else pre.input_columns


def request_columns(frame: Any, rows: int, fields: list[str]) -> dict[str, list[Any]]:
    """Raw columns as the service builds them from request records: lists, None = missing."""
    part = frame.iloc[:rows]
    return {
        name: [None if value != value else value for value in part[name].tolist()]
        for name in fields
        if name in part
    }


def measure_accuracy(
    scorers: dict[str, Scorer], cat: np.ndarray, num: np.ndarray, labels: np.ndarray, kind: str
) -> dict[str, Any]:
    """Each variant's score (the task kind's metric) on the whole test window, and how far
    their outputs lie apart."""
    from maas.config.kinds import SCORE
    from maas.pipeline.evaluation.metrics import compute_metrics

    metric = SCORE[kind]
    probs = {name: np.asarray(score(cat, num), dtype=np.float64) for name, score in scorers.items()}
    scores = {name: compute_metrics(labels, p, kind)[metric] for name, p in probs.items()}
    # int8 activations are quantized with the range of the whole batch: the same record
    # scores differently alone than inside a batch (fp32 does not).
    alone_rows = min(ALONE_ROWS, len(labels))
    alone = alone_scores(scorers["ort_int8"], cat, num, alone_rows)
    int8_fp32 = np.abs(probs["ort_int8"] - probs["ort_fp32"])
    return {
        "rows": len(labels),
        "label_mean": float(np.mean(labels)),  # binary: the positive rate
        "metric": metric,
        "score": scores,
        "score_change_int8_minus_fp32": scores["ort_int8"] - scores["ort_fp32"],
        "max_abs_diff_int8_fp32": float(np.max(int8_fp32)),
        "mean_abs_diff_int8_fp32": float(np.mean(int8_fp32)),
        "max_abs_diff_torch_fp32": float(np.max(np.abs(probs["torch"] - probs["ort_fp32"]))),
        "int8_alone_vs_in_batch_max_abs_diff": float(
            np.max(np.abs(alone - probs["ort_int8"][:alone_rows]))
        ),
    }


def measure_latency(
    scorers: dict[str, Scorer],
    pre: Preprocessor,
    frame: Any,
    featurized: tuple[np.ndarray, np.ndarray],
    rounds: int,
    seconds: float,
) -> dict[str, Any]:
    """Model call on pre-featurized rows, and predict on raw request columns (the fields of the
    model's request spec), every variant interleaved."""
    cat, num = featurized

    def call(score: Scorer, c: np.ndarray, n: np.ndarray) -> Callable[[], Any]:
        return lambda: score(c, n)

    def request(score: Scorer, columns: dict[str, list[Any]]) -> Callable[[], Any]:
        return lambda: score(*pre.transform(columns))

    cases: dict[str, dict[str, Callable[[], Any]]] = {}
    for rows in CALL_ROWS:
        c, n = np.ascontiguousarray(cat[:rows]), np.ascontiguousarray(num[:rows])
        cases[f"call/{rows}"] = {name: call(score, c, n) for name, score in scorers.items()}
    for rows in REQUEST_ROWS:
        columns = request_columns(frame, rows, request_fields(pre))
        cases[f"predict/{rows}"] = {
            name: request(score, columns) for name, score in scorers.items()
        }
    samples = time_cases(cases, rounds, seconds)
    latency_us = {
        case: {name: statistics.median(values) * 1e6 for name, values in per_variant.items()}
        for case, per_variant in samples.items()
    }
    return {
        "latency_us": latency_us,
        "latency_spread_pct": {  # (p75 - p25) / median of the rounds: how noisy each cell was
            case: {
                name: 100 * iqr(values) / statistics.median(values)
                for name, values in per_variant.items()
            }
            for case, per_variant in samples.items()
        },
        "ratios": {
            case: {
                "int8_over_fp32": paired_ratio(per_variant["ort_int8"], per_variant["ort_fp32"]),
                "torch_over_fp32": paired_ratio(per_variant["torch"], per_variant["ort_fp32"]),
            }
            for case, per_variant in samples.items()
        },
        "model_share_of_predict_proba": {  # model call / whole predict, same rows
            str(rows): {
                name: latency_us[f"call/{rows}"][name] / latency_us[f"predict/{rows}"][name]
                for name in scorers
            }
            for rows in REQUEST_ROWS
        },
    }


def judge_int8(accuracy: dict[str, Any], ratios: dict[str, Any]) -> dict[str, Any]:
    """The rule's verdict: int8 on by default only if the score drops by less than
    MAX_SCORE_DROP and int8 is faster per call at RULE_ROWS."""
    metric, drop = accuracy["metric"], -accuracy["score_change_int8_minus_fp32"]
    int8 = {rows: ratios[f"call/{rows}"]["int8_over_fp32"] for rows in RULE_ROWS}
    faster = {str(rows): int8[rows]["median"] < 1 for rows in RULE_ROWS}
    reasons = [
        f"{metric} drop {drop:+.5f} {'<' if drop < MAX_SCORE_DROP else '>='} {MAX_SCORE_DROP}",
        *(
            f"int8/fp32 per call at {rows} row(s) {int8[rows]['median']:.2f}x "
            f"({'faster' if faster[str(rows)] else 'not faster'}; int8 faster in "
            f"{int8[rows]['a_faster_share']:.0%} of rounds)"
            for rows in RULE_ROWS
        ),
    ]
    return {
        "rule": (
            f"int8 on by default only if {metric} drops by less than {MAX_SCORE_DROP} and it is "
            f"faster per call at {' and '.join(map(str, RULE_ROWS))} rows"
        ),
        "int8_default": drop < MAX_SCORE_DROP and all(faster.values()),
        "score_drop": drop,
        "faster": faster,
        "reasons": reasons,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import onnx
    import onnxruntime
    import pandas as pd
    import torch

    started = time.perf_counter()
    models, test_path = Path(args.models), Path(args.test)
    frame = pd.read_parquet(test_path)
    pre = Preprocessor.from_dict(json.loads((models / PREPROCESSING_FILE).read_text()))
    kind = ModelConfig.load(models / MODEL_CONFIG_FILE).head  # binary | multiclass | regression
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
        nodes = onnx.load(str(int8_path)).graph.node
        int8_ops = dict(sorted(Counter(node.op_type for node in nodes).items()))
        scorers: dict[str, Scorer] = {
            "ort_fp32": ort_scorer(models / ONNX_FILE),
            "ort_int8": ort_scorer(int8_path),
            "torch": torch_scorer(models),
        }
    cat, num = pre.transform(frame)
    accuracy = measure_accuracy(scorers, cat, num, frame["label"].to_numpy(), kind)
    latency = measure_latency(scorers, pre, frame, (cat, num), args.rounds, args.seconds)
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
        **latency,
        "accuracy": accuracy,
        "sizes_bytes": {
            "model.onnx": (models / ONNX_FILE).stat().st_size,
            "model.int8.onnx": int8_bytes,
            "weights.safetensors": (models / WEIGHTS_FILE).stat().st_size,
        },
        "verdict": judge_int8(accuracy, latency["ratios"]),
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
    print(f"{acc['metric']} on {acc['rows']} test rows (label mean {acc['label_mean']:.3f}):")
    for name in VARIANTS:
        print(f"  {name:<9} {acc['score'][name]:.5f}")
    print(
        f"  int8 - fp32 {acc['score_change_int8_minus_fp32']:+.5f}; max |int8 - fp32| "
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
