"""The corpus benchmark's quick subset (bench/corpus.py, `make bench-corpus` runs it all): a real
table nobody tuned for, scikit-learn's wine, and the cheapest edge case, built and run by the
benchmark's own code. Whatever the data, a run leaves every file of the ErrorAnalysis output
and a report that agrees with itself. The module's tests stay on one xdist worker (conftest.py
groups by module), so each table runs once."""

import os
from typing import Callable

import pytest

from bench import corpus
from blindspot.error_analysis.report.invariants import violations

# wine: 178 rows, 13 numbers, 3 classes. rows_20: the fewest rows the preflight accepts, two
# classes far apart, so also a report without a single mistake (no_errors' case, one run less).
SUBSET = ('wine', 'rows_20')


@pytest.fixture(scope='module')
def corpus_run(tmp_path_factory) -> Callable[[str], corpus.Outcome]:
    """Runs a table of the corpus on first use and keeps its outcome for the module."""
    work = tmp_path_factory.mktemp('corpus')
    outcomes = {}

    def run(name: str) -> corpus.Outcome:
        if name not in outcomes:
            outcomes[name] = corpus.run_table(corpus.TABLES[name], work)
        return outcomes[name]

    return run


@pytest.mark.parametrize('name', SUBSET)
def test_run_leaves_every_part_of_the_error_analysis_output(corpus_run, name):
    outcome = corpus_run(name)
    assert outcome.error is None
    assert outcome.report_dir is not None  # found through ML Metadata
    for part in corpus.expected_parts():
        assert os.path.isfile(os.path.join(outcome.report_dir, part)), part
    assert outcome.missing_parts == []


@pytest.mark.parametrize('name', SUBSET)
def test_report_agrees_with_itself(corpus_run, name):
    report = corpus_run(name).report
    assert report is not None
    assert violations(report) == []
    assert report['invariant_violations'] == []


@pytest.mark.parametrize('name', SUBSET)
def test_report_covers_the_eval_split_the_benchmark_predicts(corpus_run, name):
    """bench/corpus.py places one_error's flipped label by predicting the split: the rows it
    says are eval rows are the ones ErrorAnalysis analysed."""
    outcome = corpus_run(name)
    assert outcome.report is not None
    assert outcome.report['overall']['examples'] == len(corpus.eval_rows(outcome.data)) > 0


def test_separable_table_gives_a_report_without_mistakes(corpus_run):
    report = corpus_run('rows_20').report
    assert report is not None
    assert report['overall']['errors'] == 0 and report['overall']['accuracy'] == 1.0
    assert report['hardest_examples'] == []
    assert report['diagnosis']['label_suspects'] == []
    assert not any(s['held'] for s in report['slices']['slices'])
