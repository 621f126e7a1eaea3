"""The gateway's catalog (`GET /models`, `GET /models/<name>`) and its 404 answers, as files
HAProxy's Lua reads on each request.

The catalog used to be map values sent through the Runtime API: one command line each, within
HAProxy's 16 KiB buffer, so `GET /models` listed about 26 models and a bigger catalog locked
the gateway out. A file has no such cap: the Lua service sends it whatever its size
(tests/unit/operate/test_gateway_limits.py reads 200 models back; measured, docs/operations.md:
200 entries of 20 input fields are 218 KB in 0.6 ms, 2,000 are 2.2 MB in 3.1 ms), and
publishing writes files only, the same whether the gateway runs or not. What remains is the
file read on each request (blocking HAProxy's event loop that long) and the first publish of N
entries writing N files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from maas.files import write_text_atomic
from maas.operate.gateway_routes import MODEL_NAME

LUA = r"""-- rendered by maas (maas.operate.gateway_catalog): the catalog, read from files
local folder = %(folder)s

local function read(path)
  local file = io.open(path, "rb")
  if file == nil then return nil end
  local text = file:read("a")
  file:close()
  return text
end

local function entry_path(name)
  if name == nil or not string.match(name, "^[%%w%%._%%-]+$") then return nil end
  return folder .. "/catalog/" .. name .. ".json"
end

-- `var(txn.model),lua.maas_has_entry -m int 1`: the model has a catalog entry
core.register_converters("maas_has_entry", function(name)
  local path = entry_path(name)
  local file = path and io.open(path, "rb")
  if not file then return 0 end
  file:close()
  return 1
end)

local function answer(applet, status, body)
  applet:set_status(status)
  applet:add_header("content-type", "application/json")
  applet:add_header("content-length", string.len(body))
  applet:start_response()
  applet:send(body)
end

-- txn.answer says which: list, entry, unknown (no such model), no_default
core.register_service("maas_catalog", "http", function(applet)
  local what = applet:get_var("txn.answer")
  if what == "list" then
    return answer(applet, 200, read(folder .. "/catalog.json") or "[]")
  end
  if what == "entry" then
    local body = read(entry_path(applet:get_var("txn.model")) or "")
    if body ~= nil then return answer(applet, 200, body) end
  end
  local names = read(folder .. "/names.json") or "[]"
  if what == "no_default" then
    return answer(applet, 404,
      '{"error":"no default model serves here: use /models/<name>/...","models":' .. names .. '}')
  end
  local model = applet:get_var("txn.model_json") or ""
  return answer(applet, 404,
    '{"error":"no such model","model":"' .. model .. '","models":' .. names .. '}')
end)

-- the metrics frontend's /metrics/backends: which model each backend serves, in Prometheus's
-- text format (backends.prom, maas.operate.gateway_metrics)
core.register_service("maas_backends", "http", function(applet)
  local body = read(folder .. "/backends.prom") or ""
  applet:set_status(200)
  applet:add_header("content-type", "text/plain; version=0.0.4")
  applet:add_header("content-length", string.len(body))
  applet:start_response()
  applet:send(body)
end)
"""


def _lua_string(text: str) -> str:
    """`text` as a Lua long string (no escapes inside: any path fits)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def compact(value: Any) -> str:
    """One line of JSON, no spaces between tokens."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class CatalogFiles:
    """`catalog.json` (the list), `names.json` (the models served), `catalog/<name>.json` (each
    entry) and `catalog.lua` (what serves them), in the gateway's folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lua = folder / "catalog.lua"
        self.listed = folder / "catalog.json"
        self.names = folder / "names.json"
        self.entries = folder / "catalog"

    def write_lua(self) -> None:
        text = LUA % {"folder": _lua_string(str(self.folder))}
        write_text_atomic(self.lua, text)

    def write(self, catalog: dict[str, dict[str, Any]], served: list[str]) -> None:
        """Every file as `catalog` and the models `served` say; an entry whose name cannot be
        a path is listed but has no file of its own (its path answers as a model's)."""
        self.entries.mkdir(parents=True, exist_ok=True)
        wanted = {}
        for name, entry in sorted(catalog.items()):
            if re.fullmatch(MODEL_NAME, name) and name not in (".", ".."):
                wanted[f"{name}.json"] = compact(entry)
        for file in self.entries.iterdir():  # an entry removed: its path answers 404
            if file.name not in wanted:
                file.unlink(missing_ok=True)
        for file_name, text in wanted.items():
            path = self.entries / file_name
            if not path.is_file() or path.read_text() != text:
                write_text_atomic(path, text)
        listed = [entry for _, entry in sorted(catalog.items())]
        _write_if_changed(self.listed, compact(listed))
        _write_if_changed(self.names, compact(sorted(served)))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        write_text_atomic(path, text)
