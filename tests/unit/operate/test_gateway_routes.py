"""The gateway's routing table: what its maps say, and how it survives a restart (file)."""

from __future__ import annotations

import json
from pathlib import Path

from maas.operate.gateway_catalog import CatalogFiles
from maas.operate.gateway_live import live_table, parse_map, parse_servers
from maas.operate.gateway_routes import (
    DEFAULT,
    Route,
    RouteTable,
    route_map,
    version_map,
)


def test_maps_route_served_models_only_and_the_catalog_is_a_file_each(tmp_path: Path) -> None:
    table = RouteTable(
        routes={
            "a": Route("b0", [4000], "3", "green"),
            "b": Route("b1"),
            "c": Route("b2", [4001], "1"),
        },
        default="a",
        catalog={"a": {"model": "a", "detail": "x y"}, "c": {"model": "c"}},
    )
    # each model's live slot (b: out of service)
    assert route_map(table) == {"a": "b0-green", "c": "b2-blue", DEFAULT: "b0-green"}
    assert version_map(table) == {"a/3": "b0-green", "c/1": "b2-blue"}
    files = CatalogFiles(tmp_path)
    files.write(table.catalog, sorted(table.served()))
    assert json.loads(files.listed.read_text()) == [{"model": "a", "detail": "x y"}, {"model": "c"}]
    assert json.loads(files.names.read_text()) == ["a", "c"]
    assert json.loads((files.entries / "c.json").read_text()) == {"model": "c"}
    files.write({"a": {"model": "a"}, "bad/name": {"model": "x"}}, ["a"])  # c left the catalog
    assert sorted(p.name for p in files.entries.iterdir()) == ["a.json"]
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


SERVERS_STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 b0-blue 1 blue 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 4000 - 0 0 - - 0
3 b0-blue 2 blue2 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
4 b0-green 2 green2 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 4002 - 0 0 - - 0
4 b0-green 1 green 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 4001 - 0 0 - - 0
5 b1-blue 1 blue 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
5 b1-blue 2 blue2 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
6 b1-green 1 green 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
6 b1-green 2 green2 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
"""  # noqa: E501


def test_the_live_table_is_read_from_what_haproxy_answers() -> None:
    """A table in doubt converges from HAProxy: the live slot from the routes map, the
    replicas from its ready servers (in server order), the version from the versions map; a
    recorded model out of service keeps its backend."""
    recorded = RouteTable(
        routes={"a": Route("b0", [9], "1", "blue"), "out": Route("b1")},
        default="a",
        catalog={"a": {"model": "a"}},
    )
    live = live_table(
        recorded,
        servers=parse_servers(SERVERS_STATE),
        routes=parse_map("0x1 a b0-green\n0x2 *default b0-green\n"),
        versions=parse_map("0x3 a/2 b0-green\n"),
        worker="42",
    )
    assert live.routes == {"a": Route("b0", [4001, 4002], "2", "green"), "out": Route("b1")}
    assert (live.pool, live.replicas, live.worker) == (2, 2, "42")
    assert live.catalog == recorded.catalog and live.default == "a"
