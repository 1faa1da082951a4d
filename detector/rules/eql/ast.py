"""The query as data: the node types the parser builds and the compiler turns into a predicate."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import TypeAlias

__all__ = ["And", "Compare", "Const", "Literal", "Node", "Not", "Or"]

Literal: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True)
class Compare:
    """`field <op> values`; op is one of ==, !=, :, in, in~, like, like~."""

    field: str
    op: str
    values: tuple[Literal, ...]
    optional: bool = False
    position: int = dc_field(default=0, compare=False)  # for messages; not part of the meaning


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Const:
    value: bool


Node: TypeAlias = Compare | And | Or | Not | Const
