"""report.html: one standalone page from report.json: inline CSS and SVG, one small inline
script (sortable and filterable tables), no network."""

import re
from typing import Dict, Iterable, List, Optional, Sequence

from blindspot.error_analysis.report import charts
from blindspot.error_analysis.report.compare_html import render_comparison
from blindspot.error_analysis.report.markup import escape
from blindspot.error_analysis.search.binning import display_value

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border:1px solid #e3e3e3}
th{background:#f5f5f5;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.insights li{margin:4px 0}.bar{background:#d9534f;height:10px;display:inline-block}
.base{background:#999;height:10px;display:inline-block}.ok{color:#2a7a2a}.no{color:#a33}
.cm td{width:56px;text-align:center}.gallery{display:flex;flex-wrap:wrap;gap:6px}
figure{margin:0;text-align:center;font-size:11px}img{image-rendering:pixelated;border:1px solid #ccc}.muted{color:#777}details{margin:6px 0}
.scroll{overflow-x:auto;max-width:100%}.scroll table{margin:0}
nav.toc{position:sticky;top:0;z-index:1;background:#fff;border-bottom:1px solid #ddd;padding:6px 0;
font-size:12px;white-space:nowrap;overflow-x:auto}nav.toc a{margin-right:12px;color:#245}
th.sort{cursor:pointer}input.filter{margin:4px 0;width:260px}
"""

# Click a header to sort by that column (numbers as numbers: '12.5%', '1,234', '2.1x'); type in
# the box above a table to keep the rows that contain the text. No network, no library.
_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var head = table.rows[0];
  Array.prototype.forEach.call(head.cells, function (th, col) {
    th.classList.add('sort');
    th.title = 'sort by this column';
    th.addEventListener('click', function () {
      var rows = Array.prototype.slice.call(table.rows, 1);
      var down = th.dataset.dir !== 'desc';
      th.dataset.dir = down ? 'desc' : 'asc';
      function key(row) {
        var text = (row.cells[col] || {}).textContent || '';
        var number = parseFloat(text.replace(/[,%x]|pts/g, ''));
        return isNaN(number) ? text.toLowerCase() : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;
        return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1);
      });
      rows.forEach(function (row) { table.tBodies[0].appendChild(row); });
    });
  });
});
document.querySelectorAll('input.filter').forEach(function (input) {
  var table = input.parentNode.querySelector('table');
  input.addEventListener('input', function () {
    var text = input.value.toLowerCase();
    Array.prototype.slice.call(table.rows, 1).forEach(function (row) {
      row.style.display = row.textContent.toLowerCase().indexOf(text) < 0 ? 'none' : '';
    });
  });
});
"""
# A table with more rows than this gets a filter box.
_FILTER_ROWS = 10


def _pct(x: Optional[float]) -> str:
    return '' if x is None else f'{100 * x:.1f}%'


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], cls: str = 'sortable') -> str:
    """A table in its own horizontal scroll box (a wide one never widens the page); sortable
    by its headers, and with a filter box when it is long."""
    head = ''.join(f'<th>{escape(h)}</th>' for h in headers)
    rows = list(rows)
    body = ''.join('<tr>' + ''.join(rows_cell for rows_cell in row) + '</tr>' for row in rows)
    search = (
        f'<input class="filter" placeholder="filter these {len(rows):,} rows">'
        if 'sortable' in cls and len(rows) > _FILTER_ROWS
        else ''
    )
    return (
        f'<div>{search}<div class="scroll"><table class="{cls}"><tbody>'
        f'<tr>{head}</tr>{body}</tbody></table></div></div>'
    )


def _td(value, numeric: bool = False) -> str:
    return f'<td class="n">{escape(value)}</td>' if numeric else f'<td>{escape(value)}</td>'


def _confusion(report: Dict) -> str:
    names = report['class_names']
    matrix = report['confusion']['matrix']
    normalized = report['confusion']['normalized']
    rows = []
    for i, name in enumerate(names):
        cells = [f'<th>true {escape(name)}</th>']
        for j in range(len(names)):
            rate = normalized[i][j]
            color = (
                f'rgba(42,122,42,{0.15 + 0.6 * rate:.2f})'
                if i == j
                else f'rgba(217,83,79,{min(1.0, 1.5 * rate):.2f})'
            )
            cells.append(
                f'<td style="background:{color}" title="{_pct(rate)} of true '
                f'{escape(name)}">{matrix[i][j]:,}<br><small>{_pct(rate)}</small></td>'
            )
        rows.append(cells)
    head = [''] + [f'pred {n}' for n in names]
    pairs = _table(
        ['true', 'predicted', 'count', 'share of errors', 'rate in true class'],
        (
            [
                _td(p['true']),
                _td(p['predicted']),
                _td(f'{p["count"]:,}', True),
                _td(_pct(p['share_of_errors']), True),
                _td(_pct(p['rate_in_true_class']), True),
            ]
            for p in report['confusion']['top_pairs']
        ),
    )
    return _table(head, rows, 'cm') + '<h3>Most frequent confusions</h3>' + pairs


def _slices(report: Dict) -> str:
    found = report['slices']
    overall_rate = report['overall']['error_rate'] or 0
    if not found['slices']:
        return '<p>No slice scored above the overall error rate.</p>'
    worst = (
        max(max(s['search_error_rate'] or 0, s['holdout_error_rate'] or 0) for s in found['slices'])
        or 1
    )
    rows = []
    for s in found['slices']:
        bar = (
            f'<span class="bar" style="width:{160 * (s["holdout_error_rate"] or 0) / worst:.0f}px">'
            f'</span><br><span class="base" style="width:{160 * overall_rate / worst:.0f}px">'
            '</span>'
        )
        held = (
            '<span class="ok">held</span>' if s['held'] else '<span class="no">not confirmed</span>'
        )
        name = (
            f'<span class="muted">↳ within {escape(s["parent"])}:</span><br>{escape(s["slice"])}'
            if s.get('parent')
            else escape(s['slice'])
        )
        if s.get('variants'):
            name += '<br><span class="muted">also found as (the same slice, one entry): ' + (
                '; '.join(escape(v) for v in s['variants']) + '</span>'
            )
        added = s.get('added_potential_gain')
        rows.append(
            [
                _td(s['rank'], True),
                f'<td>{name}</td>',
                _td('' if added is None else f'{100 * added:.2f}', True),
                _td('' if added is None else _pct(s['added_error_share']), True),
                _td(f'{100 * (s["potential_gain"] or 0):.2f}', True),
                _td(f'{s["size"]:,}', True),
                _td(f'{s["errors"]:,}', True),
                _td(_pct(s['error_share']), True),
                _td(_pct(s['error_rate']), True),
                _td(_pct(s['error_rate_outside']), True),
                f'<td>{bar}</td>',
                _td(f'{s["score"]:.2f}' if s['score'] is not None else '', True),
                _td(f'{s["q_value"]:.3g}' if s['q_value'] is not None else '', True),
                f'<td>{held}</td>',
            ]
        )
    config = found['config']
    note = (
        f'<p class=muted>Findings, the one that adds the most gain first: "adds" counts a '
        f'finding only on its rows outside the findings above it, against the error rate '
        f'outside every finding, so the added shares and gains sum to those of all findings '
        f'together; "own" is the finding on its own (accuracy points gained if it failed like '
        f'the rest). A refinement (↳) fails most inside the finding above it; unconfirmed '
        f'candidates come last. Found by a SliceLine lattice search (α={config["alpha"]}, up to '
        f'{config["max_predicates"]} predicates, numeric ranges over quantile bins with edges '
        f'placed inside them, min size {found["overall"]["min_support_rows"]:,} rows) on one '
        f'half of the examples; each finding is kept only if its rows outside earlier findings '
        f'still fail significantly more than the rest on the other half (one-sided exact test, '
        f'Bonferroni-adjusted p). Red bar: hold-out error rate; grey: overall '
        f'({_pct(overall_rate)}).</p>'
    )
    return note + _table(
        [
            '#',
            'slice',
            'adds: gain (points)',
            'adds: share of errors',
            'own gain (points)',
            'rows',
            'errors',
            'own share of errors',
            'error rate',
            'elsewhere',
            '',
            'score',
            'adjusted p',
            'hold-out',
        ],
        rows,
    )


def _feature_values(report: Dict) -> str:
    by_feature: Dict[str, List[Dict]] = {}
    for value in report['slices']['feature_values']:
        by_feature.setdefault(value['feature'], []).append(value)
    notes = report['slices'].get('feature_notes', {})
    blocks = []
    for feature, values in by_feature.items():
        values.sort(key=lambda v: -(v['error_rate'] or 0))
        significant = sum(
            1
            for v in values
            if v['q_value'] is not None
            and v['q_value'] < report['slices']['config']['significance']
            and (v['lift'] or 0) > 1
        )
        rows = [
            [
                _td(v['label']),
                _td(f'{v["size"]:,}', True),
                _td(_pct(v['error_rate']), True),
                _td(f'{_pct(v["error_rate_ci"][0])} – {_pct(v["error_rate_ci"][1])}', True),
                _td(f'{v["lift"]:.2f}x' if v['lift'] is not None else '', True),
                _td(f'{v["q_value"]:.3g}' if v['q_value'] is not None else '', True),
            ]
            for v in values
        ]
        note = f'<p class=muted>{escape(notes[feature])}</p>' if notes.get(feature) else ''
        blocks.append(
            f'<details><summary><b>{escape(feature)}</b> — {len(values)} values, '
            f'{significant} significantly worse than overall</summary>{note}'
            + _table(['value', 'size', 'error rate', '95% CI', 'lift', 'q'], rows)
            + '</details>'
        )
    return ''.join(blocks)


CLASSIFICATION_TFMA_METRICS = (
    'example_count',
    'binary_accuracy',
    'accuracy',
    'sparse_categorical_accuracy',
    'auc',
    'precision',
    'recall',
    'macro_precision',
    'macro_recall',
)


def tfma_section(report: Dict, metrics: Sequence[str] = CLASSIFICATION_TFMA_METRICS) -> str:
    """The Evaluator's metrics per slice (those of `metrics` it computed): overall, then one
    folded table per feature (set)."""
    rows = report['tfma']
    if not rows:
        return '<p class=muted>No evaluation was given to the component.</p>'
    names = [n for n in metrics if any(n in r['metrics'] for r in rows)]

    def table(group: List[Dict]) -> str:
        body = [
            [_td(r['slice'])]
            + [
                _td(
                    f'{r["metrics"][n]:.4g}'
                    if r['metrics'].get(n) == r['metrics'].get(n) and n in r['metrics']
                    else '–',
                    True,
                )
                for n in names
            ]
            for r in group
        ]
        return _table(['slice'] + names, body)

    groups: Dict[tuple, List[Dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row['features']), []).append(row)
    note = (
        '<p class=muted>–: undefined in that slice (e.g. recall with no positive examples, '
        'precision with no positive predictions). macro_: the mean over classes of a '
        'per-class metric.</p>'
        if {'precision', 'recall', 'macro_precision'} & set(names)
        else ''
    )
    parts = [note, table(groups.pop((), []))]
    for features, group in groups.items():
        group.sort(key=lambda r: -r['metrics'].get('example_count', 0))
        parts.append(
            f'<details><summary>by <b>{escape(" × ".join(features))}</b> — '
            f'{len(group)} slices, largest first</summary>{table(group)}</details>'
        )
    return ''.join(parts)


def _hardest(report: Dict) -> str:
    rows = report['hardest_examples']
    if not rows:
        return '<p>No mistakes.</p>'
    features = list(rows[0]['features'])
    images = any(r.get('png') for r in rows)
    body = [
        ([f'<td>{_thumbnail(r)}</td>'] if images else [])
        + [
            _td(r['example_id']),
            _td(r['label_name']),
            _td(r['predicted_name']),
            _td(f'{r["confidence"]:.3f}', True),
        ]
        + [_td(display_value(r['features'].get(f))) for f in features]
        for r in rows
    ]
    headers = (['image'] if images else []) + ['example id', 'true', 'predicted', 'confidence']
    return _table(headers + features, body)


def _gallery(report: Dict) -> str:
    if not report.get('gallery'):
        return ''
    blocks = []
    for pair in report['gallery']:
        images = ''.join(
            f'<figure><img src="data:image/png;base64,{r["png"]}" width="56" height="56" '
            f'alt="{escape(r["example_id"])}" title="example {escape(r["example_id"])}">'
            f'<figcaption>{r["confidence"]:.2f}<br><span class=muted>'
            f'{escape(r["example_id"][:8])}</span></figcaption></figure>'
            for r in pair['examples']
        )
        blocks.append(
            f'<h3>true {escape(pair["true"])} → predicted {escape(pair["predicted"])} '
            f'<span class=muted>({pair["count"]:,} mistakes; most confident first, '
            f'with the probability given to the wrong class)</span></h3>'
            f'<div class="gallery">{images}</div>'
        )
    return '<h2>Misclassified images</h2>' + ''.join(blocks)


def manual_note(manual: Dict) -> str:
    """' 12 of 40 tagged ids found in this split.' ('' without a tags file)."""
    if not manual['ids']:
        return ''
    return f' {manual["matched"]:,} of {manual["ids"]:,} tagged ids found in this split.'


def _tags(report: Dict) -> str:
    tags = report.get('tags')
    if not tags:
        return ''
    rows = [
        [
            _td(r['tag']),
            _td(r['source']),
            _td(f'{r["rows"]:,}', True),
            _td(_pct(r['share']), True),
            _td(_pct(r['accuracy']), True),
            _td(_pct(r['reference']) + ('' if r['reference_given'] else ' (overall)'), True),
            _td(_pct(r['gap']), True),
            _td(f'{100 * r["potential_gain"]:.2f} pts', True),
        ]
        + _diagnosis_cells(r.get('diagnosis'))
        for r in tags['prioritization']
    ]
    note = (
        '<p class=muted>Potential gain = gap to the reference accuracy × share of the data: '
        'the most overall accuracy fixing that category could bring. Manual tags are '
        "weighted by the review sheet's sampling weights. Diagnosis: inside the tag vs outside "
        "it, over the tag's rows (unweighted); a manual tag's training coverage is unknown "
        '(it marks analysed examples). ' + _DIAGNOSIS_NOTE + manual_note(tags['manual']) + '</p>'
    )
    return (
        '<h2>What to work on: tags ranked by potential gain</h2>'
        + note
        + _table(
            ['tag', 'from', 'rows', 'share', 'accuracy', 'reference', 'gap', 'potential gain']
            + _DIAGNOSIS_HEADERS,
            rows,
        )
    )


def _classes(report: Dict) -> str:
    """Per class support, predictions, precision and recall."""
    rows = [
        [
            _td(c['class']),
            _td(f'{c["support"]:,}', True),
            _td(f'{c["predicted"]:,}', True),
            _td(_pct(c['precision']) if c['precision'] is not None else 'never predicted', True),
            _td(_pct(c['recall']), True),
        ]
        for c in report.get('classes') or []
    ]
    if not rows:
        return ''
    return '<h2>Per class</h2>' + _table(
        ['class', 'support', 'predicted', 'precision', 'recall'], rows
    )


def _num(x: Optional[float], digits: int = 2) -> str:
    return '–' if x is None else f'{x:.{digits}f}'


def diagnosed_findings(report: Dict) -> List[Dict]:
    """The held findings (not refinements of another) that carry a diagnosis."""
    return [
        s
        for s in report['slices']['slices']
        if s['held'] and not s.get('parent') and s.get('diagnosis')
    ]


def _next_steps(report: Dict) -> str:
    """Each finding's evidence inside vs outside and the next step the rules chose."""
    findings = diagnosed_findings(report)
    if not findings:
        return ''
    rows = [[_td(s['slice'])] + _diagnosis_cells(s['diagnosis']) for s in findings]
    return (
        '<h2>What to do next, per finding</h2><p class=muted>Inside the finding vs outside it. '
        + _DIAGNOSIS_NOTE
        + _train_note(report)
        + '</p>'
        + _table(['finding'] + _DIAGNOSIS_HEADERS, rows)
    )


_DIAGNOSIS_HEADERS = [
    'train share vs here',
    'train error vs here (95% CI); elsewhere',
    'errors that are label suspects',
    'confidence on mistakes',
    'calibration error',
    'next step',
]
_DIAGNOSIS_NOTE = (
    'Train share: share of the training rows in it vs its share of the analysed rows. Label '
    'suspects (confident learning): share of the errors whose given label the model finds '
    'unlikely while it confidently predicts another class. Calibration error: expected '
    'calibration error over 10 confidence bins. Train error: the model run on its training '
    'rows (a uniform sample by example id beyond --train-sample rows) beside its error here, '
    'and the same outside it; with a reference accuracy, avoidable bias = train error - '
    'reference error and variance = error here - train error.'
)


def _train_note(report: Dict) -> str:
    """How many training rows the train errors come from."""
    diagnosis = report.get('diagnosis')
    if not diagnosis or not diagnosis['overall'].get('train_rows'):
        return ''
    overall = diagnosis['overall']
    if 'train_predicted' not in overall:
        return ''
    if not overall['train_predicted']:
        return ' No train error: the model was not run on training rows (--train-sample 0).'
    sample = (
        f'all {overall["train_rows"]:,} training rows'
        if overall['train_predicted'] == overall['train_rows']
        else f'a uniform sample of {overall["train_predicted"]:,} of the '
        f'{overall["train_rows"]:,} training rows (at most {diagnosis["train_sample"]:,}, '
        'chosen by example id: the same rows in every run)'
    )
    return (
        f' Train error from {sample}: {_pct(overall["train_error_rate"])} overall, against '
        f'{_pct(overall["error_rate"])} here.'
    )


def _fit_cell(d: Dict) -> str:
    fit = d.get('fit')
    if not fit:
        return 'unknown'

    def rate(r: Dict) -> str:
        low, high = r['interval']
        return f'{_pct(r["rate"])} ({_pct(low)}–{_pct(high)})'

    text = (
        f'{rate(fit["train"])} vs {rate(fit["here"])}; elsewhere '
        f'{_pct(fit["train_outside"]["rate"])} vs {_pct(fit["here_outside"]["rate"])}'
    )
    reference = d.get('reference')
    if reference:
        text += (
            f'; avoidable bias {100 * reference["avoidable_bias"]:+.1f} pts, variance '
            f'{100 * reference["variance"]:+.1f} pts (reference error '
            f'{_pct(reference["reference_error"])})'
        )
    return text


def _diagnosis_cells(d: Optional[Dict]) -> List[str]:
    """A diagnosis (a finding's or a tag's), inside vs outside, as table cells."""
    if not d:
        return [_td('')] * len(_DIAGNOSIS_HEADERS)
    inside, outside, coverage = d['inside'], d['outside'], d['coverage']
    return [
        _td(
            f'{_pct(coverage["train_share"])} ({coverage["train_rows"]:,} rows) vs '
            f'{_pct(coverage["analysed_share"])}'
            if coverage
            else 'unknown',
            True,
        ),
        _td(_fit_cell(d), True),
        _td(
            f'{_pct(inside["suspect_share_of_errors"]) or "–"} vs '
            f'{_pct(outside["suspect_share_of_errors"]) or "– (no errors)"}',
            True,
        ),
        _td(
            f'{_num(inside["mistake_confidence"])} vs {_num(outside["mistake_confidence"])}',
            True,
        ),
        _td(
            f'{_num(inside["calibration_error"], 3)} vs {_num(outside["calibration_error"], 3)}',
            True,
        ),
        _td(d['next_step']),
    ]


def _label_suspects(report: Dict) -> str:
    """The most suspicious labels, lowest probability of the given label first."""
    diagnosis = report.get('diagnosis')
    if not diagnosis or not diagnosis['label_suspects']:
        return ''
    rows = diagnosis['label_suspects']
    features = list(rows[0]['features'])
    images = any(r.get('png') for r in rows)
    body = [
        ([f'<td>{_thumbnail(r)}</td>'] if images else [])
        + [
            _td(r['example_id']),
            _td(r['label_name']),
            _td(f'{r["label_probability"]:.3f}', True),
            _td(r['predicted_name']),
            _td(f'{r["confidence"]:.3f}', True),
        ]
        + [_td(display_value(r['features'].get(f))) for f in features]
        for r in rows
    ]
    overall = diagnosis['overall']
    shown = (
        f'all {len(rows):,}'
        if len(rows) == overall['suspects']
        else f'the {len(rows):,} most suspicious of {overall["suspects"]:,}'
    )
    headers = ['example id', 'given label', 'its probability', 'predicted', 'confidence']
    return f'<h2>Label suspects ({shown}, most suspicious first)</h2>' + _table(
        (['image'] if images else []) + headers + features, body
    )


def _violations(report: Dict) -> str:
    """A report that breaks its own rules says so first (report/invariants.py)."""
    problems = report.get('invariant_violations')
    if not problems:
        return ''
    items = ''.join(f'<li>{escape(p)}</li>' for p in problems)
    return (
        '<h2 class=no>This report contradicts itself</h2><p>Do not trust the parts below that '
        f'these rules concern; please report it.</p><ul>{items}</ul>'
    )


def _finding_examples(report: Dict) -> str:
    """Under each finding, its mistakes: most confident first, the finding's own columns
    first, then label, prediction, confidence, suspect flag and the other columns (those the
    label is computed from first); images and ids for image data."""
    findings = [s for s in report['slices']['slices'] if s['held'] and s.get('examples')]
    if not findings:
        return ''
    blocks = []
    for s in findings:
        examples = s['examples']
        rows = examples['rows']
        own = list(dict.fromkeys(p['feature'] for p in s['predicates']))
        present = list(dict.fromkeys(f for r in rows for f in r['features']))
        context = [f for f in report.get('label_sources', []) if f in present and f not in own]
        rest = [f for f in present if f not in own and f not in context]
        body = [
            ([f'<td>{_thumbnail(r)}</td>'] if r.get('png') else [])
            + [_td(r['example_id'])]
            + [_td(display_value(r['features'].get(f))) for f in own]
            + [
                _td(r['label_name']),
                _td(r['predicted_name']),
                _td(f'{r["confidence"]:.3f}', True),
                _td('suspect' if r.get('label_suspect') else ''),
            ]
            + [_td(display_value(r['features'].get(c))) for c in context]
            + [_td(display_value(r['features'].get(f))) for f in rest]
            for r in rows
        ]
        headers = (
            (['image'] if any(r.get('png') for r in rows) else [])
            + ['example id', *own, 'label', 'predicted', 'confidence', 'label suspect?']
            + context
            + rest
        )
        shown = (
            f'all {len(rows):,} mistakes'
            if len(rows) == examples['mistakes']
            else f'the {len(rows):,} most confident of its {examples["mistakes"]:,} mistakes'
        )
        parent = (
            f'<span class=muted>↳ within {escape(s["parent"])}:</span> ' if s.get('parent') else ''
        )
        blocks.append(
            f'<details><summary>{parent}<b>{escape(s["slice"])}</b> — {shown}</summary>'
            + _table(headers, body)
            + '</details>'
        )
    return (
        '<h2>Mistakes per finding</h2><p class=muted>Open a finding to read its mistakes, '
        'most confident first (the ones most likely to show a label error or a missing '
        'signal); the columns the label is computed from, when the examples have them, '
        'follow the prediction.</p>' + ''.join(blocks)
    )


def _thumbnail(record: Dict) -> str:
    return (
        f'<img src="data:image/png;base64,{record["png"]}" width="42" height="42" '
        f'alt="{escape(record["example_id"])}" title="{escape(record["example_id"])}">'
    )


def _contents(page: str) -> str:
    """Ids for the page's sections and a sticky list of links to them."""
    titles = []

    def anchor(match: 're.Match') -> str:
        titles.append(re.sub('<[^>]+>', '', match.group(2)))
        return f'<h2 id="s{len(titles)}"{match.group(1)}>{match.group(2)}</h2>'

    page = re.sub(r'<h2([^>]*)>(.*?)</h2>', anchor, page)
    links = ''.join(f'<a href="#s{i}">{title}</a>' for i, title in enumerate(titles, 1))
    return f'<nav class="toc">{links}</nav>{page}'


def _classification_sections(report: Dict, insights: str) -> str:
    return f"""{_violations(report)}<h2>Insights</h2><ul class="insights">{insights}</ul>
<h2>Failing slices found automatically</h2>{_slices(report)}
{_next_steps(report)}
{_finding_examples(report)}
{render_comparison(report)}
{charts.html_section(report)}
<h2>Confusion matrix</h2>{_confusion(report)}
{_classes(report)}
{_tags(report)}
{_gallery(report)}
<h2>Error rate by feature value</h2>{_feature_values(report)}
<h2>TFMA sliced metrics (Evaluator)</h2>{tfma_section(report)}
<h2>Hardest examples (most confident mistakes)</h2>{_hardest(report)}
{_label_suspects(report)}"""


def render(report: Dict) -> str:
    overall = report['overall']
    insights = ''.join(f'<li>{escape(line)}</li>' for line in report['insights'])
    if report.get('regression'):
        from blindspot.error_analysis.report import regression_html

        sections = regression_html.sections(
            report, insights, _violations(report), render_comparison(report)
        )
        headline = f'MAE {overall["mae"]:.3g}, RMSE {overall["rmse"]:.3g}'
    else:
        sections = _classification_sections(report, insights)
        headline = f'accuracy {_pct(overall["accuracy"])}'
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Blindspot error analysis</title><style>{_CSS}</style></head><body>
<h1>Error analysis — {escape(report.get('label_name') or report['label_key'])} on {escape(', '.join(report['splits']))}</h1>
<p class=muted>{overall['examples']:,} examples, {headline},
report v{report['version']} written {escape(report['created'])}</p>
{_contents(sections)}
<script>{_SCRIPT}</script>
</body></html>"""
