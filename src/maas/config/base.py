"""The one base of every configuration model: strict (an unknown key is an error naming it)
and frozen (parsed once at the edge, then handed on, never changed)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["block", "warn"]
ColumnType = Literal["int", "float", "str", "bool"]  # bool: True/False, read as a category
CATEGORY_TYPES = ("str", "bool")  # the column types features and drift read as categories


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
