"""Plausible wrong attempts at a HumanEval function: small edits of a working solution.

Each operator changes one site (a comparison, a constant, an arithmetic or boolean
operator, an edge-case guard). These are the mistakes the scripted agent makes when its
competence roll fails. Whether a mutant really fails is decided by the tests, never here:
a mutant that happens to be equivalent passes, and is counted as a success.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator

CMP_FLIP: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
}
BIN_SWAP: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
}
BOOL_SWAP: dict[type, type] = {ast.And: ast.Or, ast.Or: ast.And}

# What a reflection on each kind of mistake tells the next attempt.
HINTS = {
    "cmp": "a boundary comparison was wrong (check < versus <=, == versus !=)",
    "const": "an off-by-one constant or index",
    "binop": "the arithmetic operator was wrong",
    "boolop": "the combination of conditions (and/or) was wrong",
    "guard": "an edge case was not handled (empty input, zero, negative values)",
    "stub": "the function did not compute the result at all",
}


def _sites(fn: ast.FunctionDef) -> Iterator[tuple[str, ast.AST]]:
    for node in ast.walk(fn):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in CMP_FLIP:
            yield "cmp", node
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield "const", node
        elif isinstance(node, ast.BinOp) and type(node.op) in BIN_SWAP:
            yield "binop", node
        elif isinstance(node, ast.BoolOp) and type(node.op) in BOOL_SWAP:
            yield "boolop", node
        elif isinstance(node, ast.If) and any(isinstance(s, ast.Return) for s in node.body):
            yield "guard", node


def _apply(kind: str, node: ast.AST, fn: ast.FunctionDef) -> None:
    if kind == "cmp":
        node.ops[0] = CMP_FLIP[type(node.ops[0])]()  # type: ignore[attr-defined]
    elif kind == "const":
        node.value = node.value + 1  # type: ignore[attr-defined]
    elif kind == "binop":
        node.op = BIN_SWAP[type(node.op)]()  # type: ignore[attr-defined]
    elif kind == "boolop":
        node.op = BOOL_SWAP[type(node.op)]()  # type: ignore[attr-defined]
    elif kind == "guard":
        _remove_statement(fn, node)


def _remove_statement(fn: ast.FunctionDef, target: ast.AST) -> None:
    for parent in ast.walk(fn):
        for name in ("body", "orelse"):
            stmts = getattr(parent, name, None)
            if isinstance(stmts, list) and target in stmts:
                stmts.remove(target)
                if not stmts:
                    stmts.append(ast.Pass())
                return


def mutants(function_source: str, limit: int, pick: Callable[[int], list[int]]) -> list[tuple[str, str]]:
    """Up to `limit` distinct (kind, code) mutants; `pick(n)` orders the n candidate sites."""
    base = ast.parse(function_source).body[0]
    assert isinstance(base, ast.FunctionDef)
    sites = list(_sites(base))
    out: list[tuple[str, str]] = []
    seen = {ast.unparse(base)}
    for index in pick(len(sites)):
        fn = copy.deepcopy(base)
        kind, node = list(_sites(fn))[index]
        _apply(kind, node, fn)
        code = ast.unparse(fn)
        if code not in seen:
            seen.add(code)
            out.append((kind, code))
        if len(out) == limit:
            break
    if not out:
        stub = copy.deepcopy(base)
        stub.body = [ast.Return(ast.Constant(None))]
        out.append(("stub", ast.unparse(stub)))
    return out
