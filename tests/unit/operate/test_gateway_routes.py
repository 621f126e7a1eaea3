"""The gateway's routing table: what its maps say, and how it survives a restart (file)."""

from __future__ import annotations

import json
from pathlib import Path

from maas.operate.gateway_routes import (
    ALL,
    DEFAULT,
    NAMES,
    Route,
    RouteTable,
    catalog_map,
    route_map,
    version_map,
)


def test_maps_route_served_models_only_and_the_catalog_is_one_line_each(tmp_path: Path) -> None:
    table = RouteTable(
        routes={
            "a": Route("b0", 4000, "3", "green"),
            "b": Route("b1"),
            "c": Route("b2", 4001, "1"),
        },
        default="a",
        catalog={"a": {"model": "a", "detail": "x y"}, "c": {"model": "c"}},
    )
    # each model's live slot (b: out of service)
    assert route_map(table) == {"a": "b0-green", "c": "b2-blue", DEFAULT: "b0-green"}
    assert version_map(table) == {"a/3": "b0-green", "c/1": "b2-blue"}
    maps = catalog_map(table)
    assert json.loads(maps[ALL]) == [{"model": "a", "detail": "x y"}, {"model": "c"}]
    assert json.loads(maps[NAMES]) == ["a", "c"]
    assert all("\n" not in value for value in maps.values())
    assert table.backend_for("a") == "b0" and table.backend_for("new") == "b3"
    table.write(tmp_path / "gateway.json")
    assert RouteTable.read(tmp_path / "gateway.json") == table
    assert RouteTable.read(tmp_path / "missing.json") == RouteTable()
    full = RouteTable(routes={f"m{i}": Route(f"b{i}", [4000 + i]) for i in range(8)})
    assert full.backend_for("one-more") is None  # the gateway makes a bigger configuration


def test_a_table_that_does_not_parse_is_an_error_not_an_empty_one(tmp_path: Path) -> None:
    import pytest

    from maas.errors import DeployError

    (tmp_path / "gateway.json").write_text('{"routes": {"a": {"backend": "b0", "port": 1}}}')
    with pytest.raises(DeployError, match="does not parse"):
        RouteTable.read(tmp_path / "gateway.json")


def test_a_large_catalog_lists_models_without_their_inputs() -> None:
    inputs = [{"name": f"field_{i}", "type": "float", "optional": False} for i in range(60)]
    routes = {f"m{i}": Route(f"b{i}", [4000 + i]) for i in range(6)}
    catalog = {f"m{i}": {"model": f"m{i}", "inputs": inputs} for i in range(6)}
    table = RouteTable(routes=routes, catalog=catalog)
    maps = catalog_map(table)
    assert [entry["model"] for entry in json.loads(maps[ALL])] == [f"m{i}" for i in range(6)]
    assert "inputs" not in json.loads(maps[ALL])[0] and json.loads(maps["m0"])["inputs"] == inputs
