"""Tags people gave to examples in a spreadsheet (e.g. the review sheet, filled in).

Format: a CSV with an `example_id` column (Blindspot's stable ids) and tag columns: `tags`
holds several tags separated by ';' (or ','), any other column whose name starts with 'tag'
holds one tag per cell. An optional `weight` column says how many examples a reviewed row
stands for (the review sheet writes it; 1 when absent).
"""

import csv
import io
from typing import Dict, Tuple

ManualTags = Dict[str, Tuple[Tuple[str, ...], float]]


class TagsFileError(ValueError):
    """A tags file that cannot be used; the message names the file and the fix."""


def parse_tags_csv(text: str, source: str) -> ManualTags:
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if 'example_id' not in columns:
        raise TagsFileError(
            f"{source} has no 'example_id' column (it has: "
            f'{", ".join(columns) or "nothing"}); start from the review sheet'
        )
    tag_columns = [c for c in columns if c.lower().startswith('tag')]
    if not tag_columns:
        raise TagsFileError(
            f"{source} has no tag column: add a 'tags' column "
            "(several tags separated by ';') or columns named tag_*"
        )
    tags: ManualTags = {}
    for line, row in enumerate(reader, start=2):
        example_id = (row.get('example_id') or '').strip()
        if not example_id:
            continue
        found = []
        for column in tag_columns:
            cell = (row.get(column) or '').strip()
            if column.lower() == 'tags':
                found += [t.strip() for t in cell.replace(',', ';').split(';') if t.strip()]
            elif cell:
                found.append(cell)
        try:
            weight = float(row.get('weight') or 1.0)
        except ValueError:
            raise TagsFileError(
                f"{source} line {line}: weight '{row.get('weight')}' is not a number"
            ) from None
        tags[example_id] = (tuple(dict.fromkeys(found)), weight)
    if not any(t for t, _ in tags.values()):
        raise TagsFileError(f'{source} has no tags filled in: nothing to prioritise')
    return tags
