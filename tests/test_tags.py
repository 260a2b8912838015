"""Tag rules and the prioritisation table."""

import numpy as np
import pytest

from blindspot.error_analysis.tags import prioritize, tag_rules


def test_rule_selects_rows_and_skips_missing():
    rule = tag_rules.parse_rule('night: trip_start_hour >= 22 or trip_start_hour < 5')
    assert rule.name == 'night' and rule.features == {'trip_start_hour'}
    hours = np.array([23, 4, 5, 12, np.nan, 22])
    assert rule.evaluate({'trip_start_hour': hours}).tolist() == [
        True,
        True,
        False,
        False,
        False,
        True,
    ]


def test_rule_on_ids_kept_as_text():
    rule = tag_rules.parse_rule('night: trip_start_hour >= 22 or trip_start_hour in [1, 2]')
    hours = np.array(['23', '1', '5', None, 'x'], dtype=object)
    assert rule.evaluate({'trip_start_hour': hours}).tolist() == [True, True, False, False, False]


def test_rule_with_strings_lists_and_not():
    rule = tag_rules.parse_rule(
        "cash short: payment_type in ['Cash', 'No Charge'] and not trip_miles > 1.5"
    )
    columns = {
        'payment_type': np.array(['Cash', 'Credit Card', None, 'No Charge'], object),
        'trip_miles': np.array([0.5, 0.5, 0.5, 3.0]),
    }
    assert rule.evaluate(columns).tolist() == [True, False, False, False]
    chained = tag_rules.parse_rule('mid: 1 <= trip_miles < 3')
    assert chained.evaluate(columns).tolist() == [False, False, False, False]
    assert chained.evaluate({'trip_miles': np.array([1.0, 2.9, 3.0])}).tolist() == [
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(
    'text', ['no colon here', 'x: __import__("os")', 'x: a + 1 > 2', 'x: a >', 'x: a in b']
)
def test_bad_rules_are_refused(text):
    with pytest.raises(tag_rules.RuleError):
        tag_rules.parse_rule(text)


def test_duplicate_rule_names():
    with pytest.raises(tag_rules.RuleError, match='repeated'):
        tag_rules.parse_rules(['a: x > 1', 'a: x < 0'])


def test_prioritization_matches_the_course_example():
    # Andrew Ng's speech example: clean 60% of data, 1% gap; people noise 30%, 2% gap;
    # car noise 4%, 4% gap (references are human-level accuracy per tag).
    total = 10_000
    counts = {
        'clean': {'source': 'manual', 'weight': 6000, 'correct': 6000 * 0.94, 'rows': 60},
        'people noise': {'source': 'manual', 'weight': 3000, 'correct': 3000 * 0.92, 'rows': 30},
        'car noise': {'source': 'manual', 'weight': 400, 'correct': 400 * 0.90, 'rows': 4},
    }
    refs = {'clean': 0.95, 'people noise': 0.94, 'car noise': 0.94}
    rows = prioritize.prioritize(counts, total, overall_accuracy=0.93, references=refs)
    gains = {r['tag']: r['potential_gain'] for r in rows}
    assert gains['clean'] == pytest.approx(0.006)
    assert gains['people noise'] == pytest.approx(0.006)
    assert gains['car noise'] == pytest.approx(0.0016)
    assert rows[-1]['tag'] == 'car noise'
    sentence = prioritize.gain_sentence(rows)
    assert "'car noise' 0.16" in sentence and 'points of accuracy' in sentence


def test_default_reference_is_overall_accuracy_and_gap_is_never_negative():
    rows = prioritize.prioritize(
        {
            'easy': {'source': 'rule', 'weight': 50, 'correct': 50, 'rows': 50},
            'hard': {'source': 'rule', 'weight': 20, 'correct': 10, 'rows': 20},
        },
        total_examples=100,
        overall_accuracy=0.8,
    )
    assert [r['tag'] for r in rows] == ['hard', 'easy']
    assert rows[0]['gap'] == pytest.approx(0.3) and rows[0]['potential_gain'] == pytest.approx(0.06)
    assert rows[1]['gap'] == 0 and rows[1]['reference_given'] is False
