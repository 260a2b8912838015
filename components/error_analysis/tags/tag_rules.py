"""Tags derived from feature rules, e.g. "night: trip_start_hour >= 22 or trip_start_hour < 5".

A rule is a safe boolean expression over feature names (comparisons, and/or/not, `in` with a
list of constants), evaluated on whole columns at once with numpy. Missing values (NaN, None)
never match a comparison.
"""

import ast
import dataclasses
import operator
from typing import Dict, FrozenSet, Sequence

import numpy as np

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


class RuleError(ValueError):
    """A tag rule that cannot be parsed or used; the message shows the rule."""


@dataclasses.dataclass(frozen=True)
class TagRule:
    name: str
    expression: str
    features: FrozenSet[str]
    tree: ast.AST = dataclasses.field(compare=False, repr=False)  # parsed once, checked

    def evaluate(self, columns: Dict[str, np.ndarray]) -> np.ndarray:
        """Boolean mask: the rows the tag applies to."""
        return np.asarray(_eval(self.tree, columns), dtype=bool)


def parse_rule(text: str) -> TagRule:
    """'name: expression' -> TagRule; a RuleError says what is wrong."""
    name, sep, expression = text.partition(':')
    name, expression = name.strip(), expression.strip()
    if not sep or not name or not expression:
        raise RuleError(
            f"tag rule '{text}' should look like 'name: feature >= 3 or other == \"x\"'"
        )
    try:
        tree = ast.parse(expression, mode='eval').body
    except SyntaxError as e:
        raise RuleError(f"tag rule '{text}': {e.msg} in '{expression}'") from None
    features = set()
    _check(tree, features, text)
    return TagRule(name, expression, frozenset(features), tree)


def parse_rules(texts: Sequence[str]) -> list:
    rules = [parse_rule(t) for t in texts]
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuleError(f'tag rule names must be unique: {", ".join(duplicates)} repeated')
    return rules


def _check(node: ast.AST, features: set, text: str) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, features, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, features, text)
    elif isinstance(node, ast.Compare):
        for part in [node.left] + node.comparators:
            _check_operand(part, features, text)
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, (ast.List, ast.Tuple)):
                    raise RuleError(f"tag rule '{text}': 'in' needs a list like [1, 2]")
            elif type(op) not in _COMPARE:
                raise RuleError(f"tag rule '{text}': unsupported comparison")
    else:
        raise RuleError(
            f"tag rule '{text}': use comparisons joined by and/or/not, not {type(node).__name__}"
        )


def _check_operand(node: ast.AST, features: set, text: str) -> None:
    if isinstance(node, ast.Name):
        features.add(node.id)
    elif isinstance(node, (ast.List, ast.Tuple)):
        for item in node.elts:
            if not isinstance(item, ast.Constant):
                raise RuleError(f"tag rule '{text}': lists may hold only constants")
    elif not (
        isinstance(node, ast.Constant)
        or (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
        )
    ):
        raise RuleError(f"tag rule '{text}': operands must be feature names or constants")


def _value(node: ast.AST, columns: Dict[str, np.ndarray]):
    if isinstance(node, ast.Name):
        return columns[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [item.value for item in node.elts]
    if isinstance(node, ast.UnaryOp):
        return -node.operand.value
    return node.value


def _missing(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        if values.dtype == object:
            return np.array([v is None or v == '' for v in values])
        return np.isnan(values.astype(float))
    return np.zeros((), bool)


def _as_numbers(values: np.ndarray) -> np.ndarray:
    """Categories that are ids ('19') compared with numbers: as floats, NaN if not a number."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            pass
    return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compare(op: ast.cmpop, left, right) -> np.ndarray:
    if isinstance(op, (ast.In, ast.NotIn)):
        if isinstance(left, np.ndarray) and left.dtype == object:
            right = [str(v) for v in right]  # ids kept as text: 'hour in [1, 2]' still works
    elif isinstance(left, np.ndarray) and left.dtype == object and _is_number(right):
        left = _as_numbers(left)
    elif isinstance(right, np.ndarray) and right.dtype == object and _is_number(left):
        right = _as_numbers(right)
    missing = _missing(left) | _missing(right)
    if isinstance(op, (ast.In, ast.NotIn)):
        result = np.isin(left, right)
        if isinstance(op, ast.NotIn):
            result = ~result
    else:
        with np.errstate(invalid='ignore'):
            try:
                result = np.asarray(_COMPARE[type(op)](left, right), dtype=bool)
            except TypeError as e:
                raise RuleError(f'cannot compare {left!r:.40} with {right!r:.40}: {e}') from None
    return result & ~missing


def _eval(node: ast.AST, columns: Dict[str, np.ndarray]) -> np.ndarray:
    if isinstance(node, ast.BoolOp):
        parts = [_eval(v, columns) for v in node.values]
        return (
            np.logical_and.reduce(parts)
            if isinstance(node.op, ast.And)
            else np.logical_or.reduce(parts)
        )
    if isinstance(node, ast.UnaryOp):
        return ~_eval(node.operand, columns)
    left = _value(node.left, columns)
    result = None
    for op, right_node in zip(node.ops, node.comparators):
        right = _value(right_node, columns)
        part = _compare(op, left, right)
        result = part if result is None else result & part
        left = right
    return result
