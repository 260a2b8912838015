"""The few plain sentences a person reads first."""

from typing import Dict, List, Sequence

from blindspot.error_analysis.report.compare import comparison_insights
from blindspot.error_analysis.search.confusion import underpredicted


def _pct(x: float) -> str:
    return f'{100 * x:.0f}%' if x >= 0.01 or x == 0 else f'{100 * x:.1f}%'


def insights(report: Dict, max_slices: int = 3) -> List[str]:
    overall = report['overall']
    if not overall['examples']:
        return ['No examples were analysed.']
    lines = []
    rate = overall['error_rate']
    lines.append(
        f'{overall["errors"]:,} errors in {overall["examples"]:,} examples: '
        f'{_pct(rate)} error rate (accuracy {_pct(overall["accuracy"])}).'
    )
    pairs = report['confusion']['top_pairs']
    if pairs:
        top = pairs[0]
        lines.append(
            f'Most errors: true {top["true"]} predicted {top["predicted"]} '
            f'({top["count"]:,}, {_pct(top["share_of_errors"])} of errors).'
        )
    slices = report['slices']
    held = [s for s in slices['slices'] if s['held']]
    findings = [s for s in held if not s.get('parent')]
    if findings:
        # The headline: the finding that holds the most errors.
        top = max(findings, key=lambda s: s['errors'])
        lines.insert(
            0,
            f'{top["slice"]}: {_pct(top["size"] / overall["examples"])} of examples hold '
            f'{top["errors"]:,} of the {overall["errors"]:,} errors '
            f'({_pct(top["error_share"])}); error rate {_pct(top["error_rate"])} vs '
            f'{_pct(top["error_rate_outside"])} elsewhere.',
        )
    promised = promised_findings(findings)[:max_slices]
    for s in promised:
        children = [c['slice'] for c in held if c.get('parent') == s['slice']]
        beyond = ' beyond the findings ranked above it' if findings.index(s) else ''
        lines.append(
            f'Fixing {s["slice"]} could gain up to {100 * reachable_gain(s):.1f} points '
            f'of accuracy{beyond} ({_pct(s["error_rate"])} errors vs '
            f'{_pct(s["error_rate_outside"])} elsewhere, {_pct(s["size"] / overall["examples"])} '
            'of examples; held on held-out data)'
            + _irreducible(s)
            + (f'; worst inside it: {children[0]}.' if children else '.')
        )
    lines += diagnosis_insights(report, promised)
    tags = report.get('tags')
    if tags:
        from blindspot.error_analysis.tags.prioritize import gain_sentence, unmatched_sentence

        sentence = gain_sentence(tags['prioritization'])
        if sentence:
            lines.insert(2, sentence)
        unmatched = unmatched_sentence(tags['manual'])
        if unmatched:
            lines.append(unmatched)
    not_held = [s for s in slices['slices'] if not s['held']]
    if not overall['errors']:
        lines.append('The model made no errors on the analysed examples: nothing to slice.')
    elif not held:
        closest = min(not_held, key=lambda s: _or_one(s['q_value']), default=None)
        lines.append(
            'No failing slice held up on held-out data: errors look spread out '
            'rather than concentrated in a slice'
            + (
                f' (closest to holding, not confirmed: {closest["slice"]}, adjusted p = '
                f'{_or_one(closest["q_value"]):.2g}).'
                if closest is not None
                else '.'
            )
        )
    if report.get('comparison'):  # what changed since the latest blessed model's report
        lines += comparison_insights(report['comparison'])
    return lines


def reachable_gain(finding: Dict) -> float:
    """The gain a finding adds that looks reachable: its added potential gain, less the part
    below its train error where the model cannot fit its rows (search/diagnosis.gain_split)."""
    reachable = finding.get('added_reachable_gain')
    return finding['added_potential_gain'] if reachable is None else reachable


def promised_findings(findings: Sequence[Dict]) -> List[Dict]:
    """Findings in the order the insights promise them: the most reachable gain first, so a
    region of inherently random outcomes is not the top promise."""
    return sorted(findings, key=lambda s: -reachable_gain(s))


def _irreducible(finding: Dict) -> str:
    """'; 11.0 more points look irreducible: ...' where part of the gain does."""
    part = finding['added_potential_gain'] - reachable_gain(finding)
    if part < 0.0005:
        return ''
    train = finding['diagnosis']['fit']['train']['rate']
    return (
        f'; {100 * part:.1f} more points look irreducible with these features and this model '
        f'(the train error '
        f'there is {_pct(train)}: the model cannot fit those rows either)'
    )


def _or_one(p_value) -> float:
    return 1.0 if p_value is None else p_value


def _examples(count: int) -> str:
    return f'{count:,} example' + ('' if count == 1 else 's')


def diagnosis_insights(report: Dict, findings: Sequence[Dict]) -> List[str]:
    """Classes the model never or rarely predicts, the next step for each finding (chosen
    by the rules in search/diagnosis.py) and the label suspects found."""
    lines = []
    never = [c for c in underpredicted(report.get('classes') or []) if not c['predicted']]
    rarely = [c for c in underpredicted(report.get('classes') or []) if c['predicted']]
    if never:
        lines.append(
            'The model never predicts '
            + ', '.join(f'{c["class"]} ({_examples(c["support"])})' for c in never)
            + '.'
        )
    if rarely:
        lines.append(
            'The model rarely predicts '
            + ', '.join(
                f'{c["class"]} ({c["predicted"]:,} predictions for {_examples(c["support"])}, '
                f'recall {_pct(c["recall"])})'
                for c in rarely
            )
            + '.'
        )
    for finding in findings:
        if finding.get('diagnosis'):
            lines.append(f'{finding["slice"]}: {finding["diagnosis"]["next_step"]}.')
    diagnosis = report.get('diagnosis')
    if diagnosis and diagnosis['overall']['suspects']:
        overall = diagnosis['overall']
        lines.append(
            f'{overall["suspects"]:,} examples ({_pct(overall["suspect_rate"])}) are label '
            'suspects (confident learning: the model predicts another class with at least its '
            'usual confidence for that class, and gives the given label less than its usual '
            'share); the most suspicious are listed in the report and marked in the review '
            'sheet.'
        )
    return lines
