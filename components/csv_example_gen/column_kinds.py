"""Column types of CSV rows as CsvExampleGen infers them (tfx_bsl's csv_decoder): pure Python,
one batch of rows at a time, so the Beam glue handles batches rather than single lines. The
preflight scan (pipelines/preflight.py) types columns with the same cell_kind."""

from typing import Callable, List, Mapping, Sequence

UNKNOWN, INT, FLOAT, STRING = 0, 1, 2, 3  # the order in which one type widens to the next
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def cell_kind(cell: str) -> int:
    """tfx_bsl's _InferValueType: empty -> UNKNOWN; an integer in int64 -> INT (a longer one
    is text); else FLOAT if float() reads it; else STRING."""
    if not cell:
        return UNKNOWN
    try:
        return INT if _INT64_MIN <= int(cell) <= _INT64_MAX else STRING
    except ValueError:
        try:
            float(cell)
        except ValueError:
            return STRING
        return FLOAT


def widen(kinds: List[int], rows: Sequence[Sequence[str]]) -> List[int]:
    """`kinds` (one per column) widened by every cell of `rows`, in place."""
    for i in range(len(kinds)):
        kind = kinds[i]
        if kind == STRING:
            continue
        for row in rows:
            cell = row[i]
            if cell:
                cell_type = cell_kind(cell)
                if cell_type > kind:
                    kind = cell_type
                    if kind == STRING:
                        break
        kinds[i] = kind
    return kinds


def token_blanker(
    header: Sequence[str], missing_tokens: Mapping[str, Sequence[str]]
) -> Callable[[List[str]], List[str]]:
    """A function that writes, in place, the given cells of the given columns of a row as
    empty: cells like 'NA' in a column of numbers (the preflight's missing_tokens), so the
    column is read as numbers with missing values."""
    blanked = [
        (i, frozenset(missing_tokens[name]))
        for i, name in enumerate(header)
        if name in missing_tokens
    ]

    def blank(row: List[str]) -> List[str]:
        for i, tokens in blanked:
            if i < len(row) and row[i] in tokens:
                row[i] = ''
        return row

    return blank
