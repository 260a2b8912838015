"""The csv preflight's counts are mergeable: a folder of CSV shards counted one file at a time
(in parallel, by Beam, in the Kubeflow CsvPreflight step) and merged in file order gives the
scan of one pass over all of them, and the same one-line refusal."""

import dataclasses
import random

import pytest

from blindspot.pipelines import preflight
from blindspot.pipelines.csv import preflight_step
from blindspot.pipelines.preflight import CsvCounts, PreflightError

TOKENS = ('NA', 'null', '?', 'n/a', 'x')


def _cell(rng: random.Random, kind: str, i: int) -> str:
    if rng.random() < 0.05:
        return ''
    if kind == 'int':
        return str(rng.randint(-5, 40))
    if kind == 'float':
        return f'{rng.gauss(0, 3):.3f}'
    if kind == 'int_na':  # numbers with missing-value tokens: read as missing, or as text
        return rng.choice(TOKENS[: rng.randint(1, 5)]) if rng.random() < 0.1 else str(i % 9)
    if kind == 'mixed':  # numbers first, text later
        return str(i) if i < 60 else rng.choice(['a', 'b', 'c'])
    return rng.choice(['red', 'green', 'blue', 'a,b', 'say "hi"'])


def _table(seed: int):
    """A generated CSV: header and rows, with a label of classes or of numbers."""
    rng = random.Random(seed)
    kinds = [rng.choice(['int', 'float', 'text', 'int_na', 'mixed']) for _ in range(5)]
    regression = seed % 3 == 0
    rows = rng.randint(40, 160)
    header = [f'c{i}' for i in range(len(kinds))] + ['y']
    body = []
    for i in range(rows):
        cells = [_cell(rng, kind, i) for kind in kinds]
        y = f'{rng.gauss(10, 4):.2f}' if regression else rng.choice(['no', 'yes', 'maybe'])
        body.append(cells + [y])
    return header, body


def _write(path, header, rows):
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _shards(folder, header, rows, parts):
    cuts = sorted(random.Random(len(rows)).sample(range(1, len(rows)), parts - 1))
    bounds = [0, *cuts, len(rows)]
    return [
        _write(folder / f'part-{k:02d}.csv', header, rows[lo:hi])
        for k, (lo, hi) in enumerate(zip(bounds, bounds[1:]))
    ]


def _outcome(scan_or_error):
    """A scan without its file list (label stats rounded), or the refusal's message."""
    if isinstance(scan_or_error, str):
        return scan_or_error
    stats = scan_or_error.label_stats
    return dataclasses.replace(
        scan_or_error,
        files=(),
        label_stats=stats and (round(stats.mean, 9), round(stats.std, 9)),
    )


def _scan(files, merge_per_file: bool, order=None):
    """One pass over the files, or each file counted alone and the counts merged in `order`
    (default: file order; a runner's combine may merge in any order)."""
    try:
        if not merge_per_file:
            return _outcome(preflight.scan_csv_files(files, 'y'))
        counts = CsvCounts.start(files[0], 'y')
        for k in order or range(len(files)):
            one = CsvCounts.empty(counts.header, 'y')
            one.add_file(files[k], files[0])
            counts.merge(one)
        return _outcome(counts.finish(files))
    except PreflightError as e:
        return str(e)


@pytest.mark.parametrize('seed', range(24))
def test_counts_merged_per_file_equal_one_pass(seed, tmp_path):
    header, rows = _table(seed)
    one_file = _write(tmp_path / 'all' / 'data.csv', header, rows)
    shards = _shards(tmp_path / 'shards', header, rows, parts=1 + seed % 4 + 1)
    whole = _scan([one_file], merge_per_file=False)
    assert _scan(shards, merge_per_file=False) == whole
    assert _scan(shards, merge_per_file=True) == whole
    backwards = list(reversed(range(len(shards))))
    assert _scan(shards, merge_per_file=True, order=backwards) == whole


def test_merged_counts_refuse_what_only_all_files_together_show(tmp_path):
    """Over 100 classes of text, each file holding few: refused once merged, as in one pass."""
    header = ['x', 'y']
    files = [
        _write(tmp_path / f'p{k}.csv', header, [[str(i), f'class{k}_{i}'] for i in range(30)])
        for k in range(4)
    ]
    assert 'holds text with more than 100 distinct values' in _scan(files, merge_per_file=True)
    assert _scan(files, merge_per_file=True) == _scan(files, merge_per_file=False)


def test_csv_preflight_counts_shards_in_beam(tmp_path):
    """The CsvPreflight step's Beam scan: the one-pass scan's result over shards, and the
    first file's problem when several have one."""
    header, rows = _table(1)
    shards = [str(p) for p in _shards(tmp_path / 'shards', header, rows, parts=4)]
    parallel = preflight_step.scan_in_parallel(shards, 'y', None, work_dir=str(tmp_path / 'w'))
    assert _outcome(parallel) == _scan(shards, merge_per_file=False)
    assert parallel.files == tuple(shards)
    with open(shards[3], 'a') as f:
        f.write('1,2\n')  # too few values
    with open(shards[1], 'ab') as f:
        f.write(b'\xff\n')  # not UTF-8
    with pytest.raises(PreflightError, match='part-01.csv') as refused:
        preflight_step.scan_in_parallel(shards, 'y', None)
    assert str(refused.value) == _scan(shards, merge_per_file=False)
