"""Per-finding diagnosis and class-level failures on small hand-made data (pure numpy)."""

import numpy as np
import pytest

from blindspot.error_analysis.report import build as report_build
from blindspot.error_analysis.report import html_page
from blindspot.error_analysis.search import binning, confusion, diagnosis
from blindspot.error_analysis.search.ranges import NO_FEATURE


def test_per_class_counts_precision_recall_and_names_classes_never_or_rarely_predicted():
    names = ['rain', 'sun', 'drizzle', 'snow']
    counts = np.array(
        [
            [40, 5, 0, 1],  # rain
            [3, 50, 0, 0],  # sun
            [10, 4, 0, 0],  # drizzle: never predicted
            [2, 2, 0, 3],  # snow: 4 predictions for 7 examples... 3 right
        ]
    )
    classes = confusion.per_class(counts, names)
    by_name = {c['class']: c for c in classes}
    assert by_name['rain'] == {
        'class': 'rain',
        'support': 46,
        'predicted': 55,
        'correct': 40,
        'precision': 40 / 55,
        'recall': 40 / 46,
    }
    assert by_name['drizzle']['precision'] is None and by_name['drizzle']['recall'] == 0
    # snow: predicted 4 times for 7 examples (>= half): not rarely predicted.
    assert [c['class'] for c in confusion.underpredicted(classes)] == ['drizzle']
    counts[3] = [4, 0, 0, 3]
    counts[0, 3] = 0  # snow now predicted 3 times for 7 examples
    assert [c['class'] for c in confusion.underpredicted(confusion.per_class(counts, names))] == [
        'drizzle',
        'snow',
    ]


def test_confident_learning_thresholds_and_suspects_by_hand():
    # A third class nobody is labelled with (never a suspect's class): the plain rule, as
    # with more than two classes.
    probabilities = np.array(
        [
            [0.9, 0.1, 0.0],  # labelled 0
            [0.7, 0.3, 0.0],  # labelled 0
            [0.2, 0.8, 0.0],  # labelled 0: p1 >= t1 and p0 < t0 -> suspect
            [0.5, 0.5, 0.0],  # labelled 0: p0 < t0 but no other class reaches its threshold
            [0.3, 0.7, 0.0],  # labelled 1
            [0.1, 0.9, 0.0],  # labelled 1
            [0.65, 0.35, 0.0],  # labelled 1: p0 >= t0 and p1 < t1 -> suspect
        ]
    )
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    thresholds = diagnosis.class_thresholds(
        diagnosis.class_probability_sums(probabilities, labels, 3)
    )
    np.testing.assert_allclose(
        thresholds, [(0.9 + 0.7 + 0.2 + 0.5) / 4, (0.7 + 0.9 + 0.35) / 3, np.nan]
    )
    assert diagnosis.label_suspects(probabilities, labels, thresholds).tolist() == [
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]


def test_binary_suspects_are_not_toss_ups():
    # The telco case: the minority class's threshold is below 0.5, so every false
    # positive (p1 > 0.5) reaches it. In a binary task the predicted class must also reach
    # 0.75 (BINARY_SUSPECT_CONFIDENCE). t0 = 0.8, t1 = 0.45.
    thresholds = np.array([0.8, 0.45])
    probabilities = np.array(
        [
            [0.45, 0.55],  # labelled 0, a toss-up false positive: the plain rule flags it
            [0.3, 0.7],  # labelled 0: p1 short of 0.75
            [0.2, 0.8],  # labelled 0: suspect
            [0.85, 0.15],  # labelled 1: p0 reaches t0 (above 0.75): suspect
            [0.95, 0.05],  # labelled 1: suspect
            [0.1, 0.9],  # labelled 1, right
        ]
    )
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert diagnosis.label_suspects(probabilities, labels, thresholds).tolist() == [
        False,
        False,
        True,
        True,
        True,
        False,
    ]
    # The same rows under the plain rule (a third, empty class): the first two are suspects.
    padded = np.column_stack([probabilities, np.zeros(6)])
    plain = diagnosis.label_suspects(padded, labels, np.append(thresholds, np.nan))
    assert plain.tolist() == [True, True, True, True, True, False]


def test_a_rare_class_with_a_tiny_threshold_does_not_flag_correct_predictions():
    # 'rare' (class 2): two labelled rows, given 0.01 and 0.03, so its threshold is 0.02.
    # Row 1 is predicted correctly (class 0) below class 0's threshold with p_rare = 0.05:
    # the paper's rule (any class above its threshold) would make it a suspect.
    probabilities = np.array(
        [
            [0.97, 0.01, 0.02],
            [0.75, 0.2, 0.05],
            [0.1, 0.88, 0.02],
            [0.9, 0.09, 0.01],
            [0.95, 0.02, 0.03],
        ]
    )
    labels = np.array([0, 0, 1, 2, 2])
    thresholds = diagnosis.class_thresholds(
        diagnosis.class_probability_sums(probabilities, labels, 3)
    )
    np.testing.assert_allclose(thresholds, [0.86, 0.88, 0.02])
    # Row 3 (labelled rare at 0.01 < 0.02, predicted 0 at 0.9 >= 0.86) is the one suspect.
    assert diagnosis.label_suspects(probabilities, labels, thresholds).tolist() == [
        False,
        False,
        False,
        True,
        False,
    ]


def test_a_class_without_labelled_rows_makes_no_suspects():
    probabilities = np.array([[0.2, 0.1, 0.7], [0.9, 0.05, 0.05]])
    labels = np.array([0, 0])
    thresholds = diagnosis.class_thresholds(
        diagnosis.class_probability_sums(probabilities, labels, 3)
    )
    assert np.isnan(thresholds[1]) and np.isnan(thresholds[2])
    assert not diagnosis.label_suspects(probabilities, labels, thresholds).any()


def test_expected_calibration_error_by_hand():
    # Bin 0.9: 4 rows, confidence 0.95, 2 correct -> |0.95 - 0.5| x 4; bin 0.6: 2 rows,
    # confidence 0.65, both correct -> |0.65 - 1| x 2. ECE = (1.8 + 0.7) / 6.
    confidence = np.array([0.95, 0.95, 0.95, 0.95, 0.65, 0.65])
    errors = np.array([1, 1, 0, 0, 0, 0])
    values = diagnosis.row_values(errors, np.zeros(6), confidence)
    assert diagnosis.expected_calibration_error(values.sum(axis=0)) == pytest.approx(2.5 / 6)


def _encoder():
    return binning.categorical_encoder(
        'zone', {'a': 100, 'b': 100, 'c': 100}, missing_count=0, max_values=10, num_distinct=3
    )


def _conditions(encoder, *values):
    """One one-predicate slice per value ('zone = v')."""
    codes = [int(encoder.encode(np.array([v], dtype=object))[0]) for v in values]
    return np.array([[[0, code, code], [NO_FEATURE, 0, 0]] for code in codes], dtype=np.int64)


def test_pattern_sums_merge_equals_one_count():
    encoder = _encoder()
    conditions = _conditions(encoder, 'a', 'b')
    rng = np.random.default_rng(0)
    zones = rng.choice(np.array(['a', 'b', 'c'], dtype=object), 300)
    codes = encoder.encode(zones)[:, None]
    values = diagnosis.row_values(rng.random(300) < 0.3, rng.random(300) < 0.1, rng.random(300))
    whole = diagnosis.PatternSums.count(codes, conditions, values)
    parts = diagnosis.PatternSums.merge(
        [
            diagnosis.PatternSums.count(codes[:100], conditions, values[:100]),
            diagnosis.PatternSums.count(codes[100:], conditions, values[100:]),
        ]
    )
    np.testing.assert_array_equal(whole.patterns, parts.patterns)
    np.testing.assert_allclose(whole.sums, parts.sums)


def _planted_diagnoses():
    """Zone a: random labels (errors are suspects); zone b: rare in training; zone c: fails
    with consistent labels and confident mistakes; zone d: the clean rest."""
    encoder = binning.categorical_encoder(
        'zone', {z: 100 for z in 'abcd'}, missing_count=0, max_values=10, num_distinct=4
    )
    zones = np.array(['a'] * 100 + ['b'] * 100 + ['c'] * 100 + ['d'] * 700, dtype=object)
    errors = np.zeros(1000)
    suspects = np.zeros(1000)
    confidence = np.full(1000, 0.9)
    errors[0:50] = 1  # a: half wrong, all of those suspects
    suspects[0:50] = 1
    errors[100:140] = 1  # b: wrong, not suspects, unsure
    confidence[100:200] = 0.6
    errors[200:240] = 1  # c: wrong, not suspects, confident
    errors[300:330] = 1  # d: a few errors
    train_zones = np.array(['a'] * 150 + ['b'] * 10 + ['c'] * 150 + ['d'] * 690, dtype=object)
    conditions = _conditions(encoder, 'a', 'b', 'c')
    table = diagnosis.PatternSums.merge(
        [
            diagnosis.PatternSums.count(
                encoder.encode(zones)[:, None],
                conditions,
                diagnosis.row_values(errors, suspects, confidence),
            ),
            diagnosis.PatternSums.count(
                encoder.encode(train_zones)[:, None],
                conditions,
                diagnosis.train_row_values(len(train_zones)),
            ),
        ]
    )
    return diagnosis.diagnose_candidates(table, conditions, [encoder]), table


def test_planted_regions_get_their_rule():
    found, _ = _planted_diagnoses()
    assert set(found) == {'zone = a', 'zone = b', 'zone = c'}
    random_labels, rare, no_signal = found['zone = a'], found['zone = b'], found['zone = c']

    assert random_labels['rule'] == 'label_noise'
    assert random_labels['inside']['suspect_share_of_errors'] == 1.0
    assert random_labels['outside']['suspects'] == 0
    assert random_labels['next_step'].startswith(
        'many label suspects (100% of its errors; its rows 50% vs 0% outside)'
    )

    assert rare['rule'] == 'under_represented'
    assert rare['coverage'] == {'train_rows': 10, 'train_share': 0.01, 'analysed_share': 0.1}
    assert rare['next_step'].startswith('under-represented in training (1% of train rows, 10,')

    assert no_signal['rule'] == 'missing_signal'
    assert no_signal['inside']['mistake_confidence'] == pytest.approx(0.9)
    assert no_signal['next_step'].startswith('well covered in training, labels look consistent')


def test_without_a_train_split_coverage_is_unknown_and_never_decides():
    evidence = {
        'coverage': None,
        'inside': {
            'suspect_share_of_errors': 0.1,
            'suspect_rate': 0.05,
            'mistake_confidence': 0.55,
        },
        'outside': {'suspect_rate': 0.05},
    }
    rule, text = diagnosis.next_step(evidence)
    assert rule == 'ambiguous' and text.startswith('training coverage unknown')


def test_report_names_underpredicted_classes_and_each_findings_next_step():
    found, table = _planted_diagnoses()
    matrix = [[500, 20, 0], [21, 400, 0], [9, 0, 0]]  # 'drizzle' never predicted
    finding = {
        'slice': 'zone = a',
        'held': True,
        'parent': None,
        'size': 100,
        'errors': 50,
        'error_share': 1.0,
        'error_rate': 0.5,
        'error_rate_outside': 0.0,
        'potential_gain': 0.04,
        'added_potential_gain': 0.045,
        'added_error_share': 1.0,
        'added_errors': 50,
        'search_size': 50,
        'holdout_size': 50,
        'search_errors': 25,
        'holdout_errors': 25,
        'score': 1.0,
        'q_value': 0.001,
        'rank': 1,
        'search_error_rate': 0.5,
        'holdout_error_rate': 0.5,
        'predicates': [{'feature': 'zone', 'label': 'zone = a'}],
    }
    suspect = {
        'example_id': 'e1',
        'label': 0,
        'predicted': 1,
        'confidence': 0.97,
        'loss': 3.0,
        'features': {'zone': 'a'},
        'label_probability': 0.01,
    }
    report = report_build.build_report(
        label_key='weather',
        splits=['eval'],
        class_names=['rain', 'sun', 'drizzle'],
        totals={'confusion': matrix, 'loss_sum': 10.0},
        slices={
            'config': {'alpha': 0.95, 'max_predicates': 3},
            'overall': {'min_support_rows': 10, 'error_rate': 50 / 950, 'rows': 950, 'errors': 50},
            'slices': [finding],
            'feature_values': [],
            'feature_notes': {},
        },
        hardest=[],
        tfma_rows=[],
        files={},
        diagnosis={
            'overall': diagnosis.overall(table),
            'thresholds': [0.9, 0.8, None],
            'candidates': found,
        },
        label_suspects=[suspect],
    )
    assert report['slices']['slices'][0]['diagnosis']['rule'] == 'label_noise'
    assert 'The model never predicts drizzle (9 examples).' in report['insights']
    assert any(
        line.startswith('zone = a: many label suspects (100% of its errors')
        for line in report['insights']
    )
    assert report['diagnosis']['label_suspects'][0]['label_name'] == 'rain'
    page = html_page.render(report)
    assert 'What to do next, per finding' in page and 'never predicted' in page
    assert 'Label suspects (the 1 most suspicious of 50, most suspicious first)' in page


def test_review_sheet_adds_label_suspects_most_suspicious_first(tmp_path):
    import csv
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from blindspot.review import sheet

    rng = np.random.default_rng(4)
    rows = 300
    labels = rng.integers(0, 2, rows)
    predicted = np.where(rng.random(rows) < 0.8, labels, 1 - labels)
    p1 = np.where(predicted == 1, 0.9, 0.1)
    suspect = (predicted != labels) & (rng.random(rows) < 0.5)
    given = rng.uniform(0.01, 0.1, rows)  # the probability of the given label, for suspects
    p1 = np.where(suspect, np.where(labels == 1, given, 1 - given), p1)
    (tmp_path / 'predictions').mkdir()
    pq.write_table(
        pa.table(
            {
                'example_id': [f'e{i}' for i in range(rows)],
                'label': labels,
                'predicted': predicted,
                'confidence': np.maximum(p1, 1 - p1),
                'label_suspect': suspect,
                'prob_0': 1 - p1,
                'prob_1': p1,
                'feature.zone': ['a'] * rows,
            }
        ),
        tmp_path / 'predictions' / 'p.parquet',
    )
    report = {'class_names': ['no', 'yes'], 'files': {'predictions': 'predictions/*.parquet'}}
    (tmp_path / 'report.json').write_text(json.dumps(report))
    out = tmp_path / 'sheet.csv'
    sheet.write_sheet(str(tmp_path), str(out), per_pair=3, correct=3, seed=0, suspects=5)
    with open(out) as f:
        written = list(csv.DictReader(f))

    # The 5 most suspicious first, marked, each standing for its share of all suspects.
    most_suspicious = np.flatnonzero(suspect)[np.argsort(given[suspect])][:5]
    assert [r['example_id'] for r in written[:5]] == [f'e{i}' for i in most_suspicious]
    assert all(r['label_suspect'] == 'True' for r in written[:5])
    assert float(written[0]['weight']) == pytest.approx(suspect.sum() / 5)
    # The rest is the usual sample, of rows that are not suspects; weights cover the split.
    assert all(r['label_suspect'] == 'False' for r in written[5:])
    assert len(written) == 5 + 3 * 2 + 3
    assert sum(float(r['weight']) for r in written) == pytest.approx(rows, rel=1e-3)


def test_training_rows_with_values_the_analysed_split_lacks_are_in_no_slice():
    # Built from the analysed split: zone a, b, c only, no missing values.
    encoder = _encoder()
    train = np.array(['a', 'z', None, 'b'], dtype=object)
    with pytest.raises(ValueError, match='values not seen'):
        encoder.encode(train)
    codes = encoder.encode(train, strict=False)[:, None]
    assert codes[1, 0] == -1 and codes[2, 0] == -1
    numeric = binning.numeric_encoder('x', [0.0, 1.0, 2.0], num_bins=2)
    assert numeric.encode(np.array([0.5, np.nan]), strict=False).tolist() == [0, -1]
    table = diagnosis.PatternSums.count(
        codes, _conditions(encoder, 'a', 'b'), diagnosis.train_row_values(4)
    )
    found = diagnosis.diagnose_candidates(table, _conditions(encoder, 'a', 'b'), [encoder])
    assert found['zone = a']['coverage'] is not None
    assert table.sums[:, diagnosis.TRAIN_ROWS].sum() == 4
    inside_a = table.sums[(table.patterns & np.uint64(1)) > 0, diagnosis.TRAIN_ROWS].sum()
    assert inside_a == 1


def test_a_small_slice_as_common_in_training_as_here_is_not_under_represented():
    def rule(train_rows, train_share, analysed_share):
        evidence = {
            'coverage': {
                'train_rows': train_rows,
                'train_share': train_share,
                'analysed_share': analysed_share,
            },
            'inside': {
                'suspect_share_of_errors': 0.1,
                'suspect_rate': 0.05,
                'mistake_confidence': 0.55,
            },
            'outside': {'suspect_rate': 0.05},
        }
        return diagnosis.next_step(evidence)[0]

    # 12 train rows, but 3% of train rows against 2% here (a 45-row eval split): well sampled.
    assert rule(12, 0.03, 0.02) == 'ambiguous'
    # Few train rows and rarer there than here: collect more.
    assert rule(12, 0.015, 0.02) == 'under_represented'
    # Many train rows but a quarter of its share here: collect more.
    assert rule(500, 0.005, 0.02) == 'under_represented'
