"""report.html's offline charts (report/charts.py): inline SVG from a report dict, and the page
that embeds them stays one file with no scripts and no network."""

import math
import re

import pytest

from blindspot.error_analysis.report import build as report_build
from blindspot.error_analysis.report import charts, html_page


def _tfma_row(features, values, accuracy, count):
    label = ' AND '.join(f'{f} = {v}' for f, v in zip(features, values)) or 'Overall'
    return {
        'slice': label,
        'features': list(features),
        'metrics': {'binary_accuracy': accuracy, 'example_count': float(count)},
    }


def _value(feature, label, size, errors, ci, bounds=None):
    return {
        'bounds': bounds,
        'feature': feature,
        'label': label,
        'size': size,
        'errors': errors,
        'error_rate': errors / size,
        'error_rate_ci': list(ci),
        'lift': None,
        'p_value': None,
        'q_value': None,
    }


@pytest.fixture
def report():
    """The parts of a report.json the page reads: two classes, TFMA rows for two declared
    slicing specs (one with more slices than a chart shows), one finding on two features."""
    tfma = [_tfma_row([], [], 0.8, 1000)]
    tfma += [
        _tfma_row(['payment_type'], [v], a, n)
        for v, a, n in [('Cash', 0.99, 600), ('Card', 0.55, 400)]
    ]
    tfma += [_tfma_row(['trip_start_hour'], [h], 0.7 + h / 100, 10 + h) for h in range(24)]
    tfma.append(_tfma_row(['company'], ['Nobody'], math.nan, 3))  # no accuracy: left out
    finding = {
        'rank': 1,
        'slice': 'payment_type = Card AND fare >= 13.6',
        'predicates': [
            {'feature': 'payment_type', 'label': 'payment_type = Card', 'is_range': False},
            {
                'feature': 'fare',
                'label': 'fare >= 13.6',
                'low': 13.6,
                'high': None,
                'is_range': True,
            },
        ],
        'search_size': 100,
        'search_errors': 60,
        'search_error_rate': 0.6,
        'holdout_size': 100,
        'holdout_errors': 58,
        'holdout_error_rate': 0.58,
        'holdout_lift': 2.9,
        'q_value': 1e-6,
        'held': True,
        'score': 1.2,
        'size': 200,
        'errors': 118,
        'error_rate': 0.59,
        'error_rate_outside': 0.1,
        'error_share': 0.59,
        'potential_gain': 0.098,
        'parent': None,
    }
    report = {
        'version': 2,
        'created': '2026-01-01T00:00:00+00:00',
        'label_key': 'big_tipper',
        'splits': ['eval'],
        'class_names': ['no', 'yes'],
        'overall': {'examples': 1000, 'errors': 200, 'error_rate': 0.2, 'accuracy': 0.8},
        'confusion': {
            'matrix': [[700, 20], [180, 100]],
            'normalized': [[0.9722, 0.0278], [0.6429, 0.3571]],
            'top_pairs': [
                {
                    'true': 'yes',
                    'predicted': 'no',
                    'count': 180,
                    'share_of_errors': 0.9,
                    'rate_in_true_class': 0.64,
                }
            ],
        },
        'slices': {
            'config': {'alpha': 0.95, 'max_predicates': 3, 'significance': 0.05},
            'overall': {'min_support_rows': 50},
            'slices': [finding],
            'feature_values': [
                _value('payment_type', 'payment_type = Cash', 600, 6, (0.005, 0.02)),
                _value('payment_type', 'payment_type = Card', 400, 180, (0.4, 0.5)),
                _value('fare', 'fare < 13.6', 700, 100, (0.12, 0.17), (None, 13.6)),
                _value('fare', 'fare >= 13.6', 300, 100, (0.28, 0.39), (13.6, None)),
                _value('company', 'company = A', 1000, 200, (0.18, 0.22)),
            ],
            'feature_notes': {},
        },
        'hardest_examples': [],
        'tfma': tfma,
        'gallery': [],
        'tags': None,
        'insights': ['200 errors in 1000 examples.'],
    }
    report['highlights'] = report_build.highlights(report['slices'])
    return report


def test_confusion_heatmap_is_inline_svg_with_counts_and_class_names(report):
    svg = charts.confusion_heatmap(report)
    assert svg.startswith('<svg') and svg.rstrip().endswith('</svg>')
    for text in ('no', 'yes', '700', '180', '64.3%', 'predicted', 'true'):
        assert f'>{text}<' in svg, text  # text stays text (svg.fonttype none)


def test_tfma_accuracy_chart_per_declared_spec_largest_slices(report):
    found = dict(charts.tfma_slice_accuracy(report))
    assert list(found) == [
        'binary_accuracy by payment_type',
        f'binary_accuracy by trip_start_hour ({charts.MAX_BARS} largest of 24 slices)',
    ]
    hours = found[f'binary_accuracy by trip_start_hour ({charts.MAX_BARS} largest of 24 slices)']
    assert '23 (n=33)' in hours and '(n=13)' not in hours  # hours 0-3 are the smallest
    assert 'Cash (n=600)' in found['binary_accuracy by payment_type']


def test_tfma_chart_labels_cross_slices_by_their_values():
    rows = [
        _tfma_row(['payment_type', 'trip_start_hour'], ['Cash', 18], 0.9, 40),
        _tfma_row(['payment_type', 'trip_start_hour'], ['Card', 18], 0.4, 20),
    ]
    ((title, svg),) = charts.tfma_slice_accuracy({'tfma': rows})
    assert title == 'binary_accuracy by payment_type × trip_start_hour'
    assert 'Cash × 18 (n=40)' in svg


def test_no_tfma_chart_without_an_accuracy_metric(report):
    assert charts.tfma_slice_accuracy({'tfma': []}) == []
    rows = [{'slice': 'Overall', 'features': [], 'metrics': {'auc': 0.7}}]
    assert charts.tfma_slice_accuracy({'tfma': rows}) == []


def test_error_rate_chart_per_finding_feature_finding_values_in_red(report):
    found = dict(charts.finding_feature_error_rates(report))
    assert list(found) == ['error rate by payment_type', 'error rate by fare']  # not company
    fare = found['error rate by fare']
    assert 'fare &gt;= 13.6 (n=300)' in fare and 'fare &lt; 13.6 (n=700)' in fare
    assert charts._FAILING in fare and charts._NEUTRAL in fare


def test_a_range_narrower_than_a_bin_gets_its_chart_and_marks_its_bin(report):
    """A refined range inside one bin (fare in [14, 15) inside the bin fare >= 13.6) covers
    less than half of every bin: its feature still gets a chart, with that bin in red."""
    fare = report['slices']['slices'][0]['predicates'][1]
    fare.update(label='14 <= fare < 15', low=14.0, high=15.0)
    report['slices']['feature_values'][3]['bounds'] = (13.6, 30.0)
    report['highlights'] = report_build.highlights(report['slices'])
    assert report['highlights']['fare'] == ['fare >= 13.6']
    assert charts._FAILING in dict(charts.finding_feature_error_rates(report))['error rate by fare']
    fare.update(low=25.0, high=None)  # an open range over a third of a closed bin
    report['highlights'] = report_build.highlights(report['slices'])
    assert 'fare' not in report['highlights']
    chart = dict(charts.finding_feature_error_rates(report))['error rate by fare']
    assert charts._FAILING not in chart and 'fare &gt;= 13.6 (n=300)' in chart


def test_report_page_embeds_charts_and_stays_self_contained(report):
    page = html_page.render(report)
    section = page[page.index('>Charts</h2>') : page.index('>Confusion matrix</h2>')]
    assert section.count('<svg') == 1 + 2 + 2
    assert page.lower().count('<script') == 1 and '<script>' in page  # one inline script
    assert not re.search(r'<script[^>]*src', page, re.I)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), 'several charts share an element id'


def test_charts_for_many_classes_without_findings_or_evaluation(report):
    """An mnist- or csv-like report: 15 classes (one never seen), nothing found, no TFMA."""
    n = 15
    matrix = [[(10 if i == j else 1) if i < n - 1 else 0 for j in range(n)] for i in range(n)]
    report['class_names'] = [f'class {i}' for i in range(n)]
    report['confusion']['matrix'] = matrix
    report['confusion']['normalized'] = [
        [c / sum(row) if sum(row) else 0.0 for c in row] for row in matrix
    ]
    report['slices']['slices'] = []
    report['highlights'] = report_build.highlights(report['slices'])
    report['tfma'] = []
    section = charts.html_section(report)
    assert section.count('<svg') == 1
    assert '>class 14<' in section
    assert '>10<' not in section  # too many classes to print counts in the cells


def test_charts_are_well_formed_svg_and_escape_their_text(report):
    """Charts are drawn as SVG text here: every chart parses as XML, labels with markup
    characters come out as text."""
    import xml.etree.ElementTree as ET

    report['class_names'] = ['<none>', 'a & b']
    svgs = [charts.confusion_heatmap(report)]
    svgs += [svg for _, svg in charts.tfma_slice_accuracy(report)]
    svgs += [svg for _, svg in charts.finding_feature_error_rates(report)]
    for svg in svgs:
        ET.fromstring(svg)
    texts = {t.text for t in ET.fromstring(svgs[0]).iter('{http://www.w3.org/2000/svg}text')}
    assert {'<none>', 'a & b'} <= texts


def test_interval_points_sit_at_their_rate_on_the_axis(report):
    """Each point is at its rate between the 0% and 100% grid lines, inside its interval."""
    import xml.etree.ElementTree as ET

    ns = '{http://www.w3.org/2000/svg}'
    svg = dict(charts.finding_feature_error_rates(report))['error rate by payment_type']
    root = ET.fromstring(svg)
    ticks = {t.text: float(t.get('x')) for t in root.iter(ns + 'text') if t.text.endswith('%')}
    zero, full = ticks['0%'], ticks['100%']
    rows = [g for g in root.iter(ns + 'g') if g.find(ns + 'circle') is not None]
    assert len(rows) == 2
    for group, (rate, low, high) in zip(rows, [(0.01, 0.005, 0.02), (0.45, 0.4, 0.5)]):
        cx = float(group.find(ns + 'circle').get('cx'))
        assert cx == pytest.approx(zero + rate * (full - zero), abs=0.2)
        whisker = group.find(ns + 'line')
        assert float(whisker.get('x1')) == pytest.approx(zero + low * (full - zero), abs=0.2)
        assert float(whisker.get('x2')) == pytest.approx(zero + high * (full - zero), abs=0.2)
    assert group.get('stroke') == charts._FAILING  # Card is the finding's value
