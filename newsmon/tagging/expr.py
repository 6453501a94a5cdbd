"""The `match` expression of a watchlist: label names joined by ``and``, ``or``, ``not`` and parentheses.

Parsed once into a small tree; evaluated on label strengths (score / threshold, so 1.0 is "at threshold").
``and`` takes the weakest side, ``or`` the strongest, ``not x`` is 1.0 when x is below its threshold
and 0.0 otherwise, so the result is >= 1.0 exactly when the boolean expression is true.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([A-Za-z_][A-Za-z0-9_]*)|(\S))")


@dataclass(frozen=True)
class Expr:
    """One node: op is 'label' (name set), 'not' (one arg), 'and' / 'or' (two or more args)."""

    op: str
    args: tuple[Expr, ...] = ()
    name: str = ""

    def labels(self) -> frozenset[str]:
        """Every label name the expression mentions."""
        if self.op == "label":
            return frozenset({self.name})
        return frozenset().union(*(a.labels() for a in self.args))

    def strength(self, ratios: Mapping[str, float]) -> float:
        """Fuzzy value of the expression; >= 1.0 means true."""
        if self.op == "label":
            return ratios.get(self.name, 0.0)
        values = [a.strength(ratios) for a in self.args]
        if self.op == "not":
            return 0.0 if values[0] >= 1.0 else 1.0
        return min(values) if self.op == "and" else max(values)


_Parser = Callable[[list[str], int], tuple[Expr, int]]


class ExprSyntaxError(ValueError):
    """The expression text is not well formed; the message says where."""


def parse_expr(text: str) -> Expr:
    """Parse a match expression such as ``a and (b or c) and not d``."""
    tokens = _tokenize(text)
    expr, pos = _parse_or(tokens, 0)
    if pos != len(tokens):
        raise ExprSyntaxError(f"unexpected {tokens[pos]!r} after a complete expression")
    return expr


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for m in _TOKEN.finditer(text):
        if m.group(4):
            raise ExprSyntaxError(f"unexpected character {m.group(4)!r}")
        tokens.append(m.group(1) or m.group(2) or m.group(3))
    if not tokens:
        raise ExprSyntaxError("the expression is empty")
    return tokens


def _parse_or(tokens: list[str], pos: int) -> tuple[Expr, int]:
    return _parse_chain(tokens, pos, "or", _parse_and)


def _parse_and(tokens: list[str], pos: int) -> tuple[Expr, int]:
    return _parse_chain(tokens, pos, "and", _parse_not)


def _parse_chain(tokens: list[str], pos: int, op: str, inner: _Parser) -> tuple[Expr, int]:
    first, pos = inner(tokens, pos)
    args = [first]
    while pos < len(tokens) and tokens[pos].lower() == op:
        nxt, pos = inner(tokens, pos + 1)
        args.append(nxt)
    return (first if len(args) == 1 else Expr(op, tuple(args))), pos


def _parse_not(tokens: list[str], pos: int) -> tuple[Expr, int]:
    if pos < len(tokens) and tokens[pos].lower() == "not":
        arg, pos = _parse_not(tokens, pos + 1)
        return Expr("not", (arg,)), pos
    return _parse_atom(tokens, pos)


def _parse_atom(tokens: list[str], pos: int) -> tuple[Expr, int]:
    if pos >= len(tokens):
        raise ExprSyntaxError("the expression ends where a label name was expected")
    tok = tokens[pos]
    if tok == "(":
        inner, pos = _parse_or(tokens, pos + 1)
        if pos >= len(tokens) or tokens[pos] != ")":
            raise ExprSyntaxError("a '(' is never closed")
        return inner, pos + 1
    if tok == ")" or tok.lower() in ("and", "or", "not"):
        raise ExprSyntaxError(f"expected a label name, found {tok!r}")
    return Expr("label", name=tok), pos + 1

