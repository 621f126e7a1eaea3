"""The Grafana dashboard (deploy/grafana/maas.json): its structure against the parts of
Grafana's dashboard JSON model it relies on, and its MLflow panels' SQL run against an MLflow
store that maas's monitoring flow wrote. Its PromQL panels are evaluated against a real
Prometheus in tests/integration/test_metrics_prometheus.py.

No JSON Schema of Grafana dashboards installs from PyPI or npm (npm's @grafana/schema ships
TypeScript types, PyPI's grafana-foundation-sdk typed builders whose `from_json` checks
nothing), so the schema below is the subset of Grafana's dashboard model this file uses."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema

from maas.config import Params
from tests.helpers import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "maas.json"
DATASOURCE_TYPES = {"prometheus", "grafana-postgresql-datasource"}
REF = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"enum": sorted(DATASOURCE_TYPES)}, "uid": {"type": "string"}},
}
GRID = {
    "type": "object",
    "required": ["h", "w", "x", "y"],
    "properties": {k: {"type": "integer", "minimum": 0} for k in "hwxy"},
    "additionalProperties": False,
}
PANEL = {
    "type": "object",
    "required": ["id", "type", "title", "gridPos"],
    "properties": {
        "id": {"type": "integer"},
        "type": {"enum": ["row", "timeseries", "table"]},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "gridPos": GRID,
        "datasource": REF,
        "collapsed": {"type": "boolean"},
        "panels": {"type": "array", "maxItems": 0},
        "targets": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["refId", "datasource"],
                "properties": {"refId": {"type": "string"}, "datasource": REF},
                "oneOf": [{"required": ["expr"]}, {"required": ["rawSql", "format"]}],
            },
        },
        "fieldConfig": {
            "type": "object",
            "required": ["defaults", "overrides"],
            "properties": {"defaults": {"type": "object"}, "overrides": {"type": "array"}},
        },
        "options": {"type": "object"},
    },
    "additionalProperties": False,
    "if": {"properties": {"type": {"const": "row"}}},
    "then": {"required": ["collapsed", "panels"]},
    "else": {"required": ["datasource", "targets", "fieldConfig", "options"]},
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "graphTooltip": {"enum": [0, 1, 2]},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type"],
                        "properties": {"type": {"enum": ["datasource", "query"]}},
                    },
                }
            },
        },
        "panels": {"type": "array", "items": PANEL},
    },
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def targets(kind: str) -> list[dict[str, Any]]:
    return [
        target
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == kind
    ]


def test_the_dashboard_is_grafanas_model_with_the_panels_operators_need() -> None:
    board = dashboard()
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(board, SCHEMA, cls=jsonschema.Draft202012Validator)
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:  # within Grafana's 24 columns, no two overlapping
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(set(refs)) == len(refs), panel["title"]
    cells = [
        (x, y)
        for p in panels
        for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
        for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    sources = {
        f"${{{name}}}": v["query"] for name, v in variables.items() if v["type"] == "datasource"
    }
    for panel in panels:
        for ref in [panel.get("datasource"), *[t["datasource"] for t in panel.get("targets", [])]]:
            if ref is not None:  # every panel's source is one of the dashboard's variables
                assert sources[ref["uid"]] == ref["type"], panel["title"]
    titles = " | ".join(panel["title"] for panel in panels)
    for needed in ("Requests per second", "Error rate", "p99 latency", "Drift", "Realized"):
        assert needed in titles
    assert all(
        "$model" in target["expr"] for target in targets("prometheus") if "model" in target["expr"]
    )


def test_the_mlflow_panels_read_what_the_monitoring_flow_records(
    params: Params, tmp_path: Path
) -> None:
    """The drift and realized-quality panels' SQL, run on an MLflow store (SQLite here,
    PostgreSQL in team mode: the same tables) holding a period the monitoring flow recorded."""
    from mlflow import MlflowClient

    from maas.monitor.run import _record

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    result = {
        "period": "2013-08",
        "champion": "1",
        "served_rows": 120,
        "arrived_rows": 300,
        "breaches": ["roc_auc drop"],
        "served_drift": {"share": 0.53},
        "arrived_drift": {"share": 0.6},
        "realized": {"metrics": {"roc_auc": 0.69}},
        "registered": {"metric": "roc_auc", "value": 0.7355},
    }
    _record(client, params, result, tmp_path / "no-reports")
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        drift, quality = (
            db.execute(target["rawSql"]).fetchall()
            for target in targets("grafana-postgresql-datasource")
        )
    assert drift == [(params.task, "2013-08", "1", 0.53, 0.6, 1.0)]
    assert sorted(quality) == [
        (params.task, "2013-08", "1", "realized_roc_auc", 0.69),
        (params.task, "2013-08", "1", "registered_roc_auc", 0.7355),
    ]
