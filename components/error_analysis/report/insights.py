"""The few plain sentences a person reads first."""

from typing import Dict, List

from components.error_analysis.report.compare import comparison_insights


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
    for s in held[:max_slices]:
        share = (s['search_size'] + s['holdout_size']) / overall['examples']
        errors = s['search_errors'] + s['holdout_errors']
        size = s['search_size'] + s['holdout_size']
        slice_rate = errors / size
        lines.append(
            f'{s["slice"]} has a {_pct(slice_rate)} error rate vs {_pct(rate)} overall '
            f'({slice_rate / rate:.1f}x) on {_pct(share)} of examples; '
            'held on held-out data.'
        )
    tags = report.get('tags')
    if tags:
        from components.error_analysis.tags.prioritize import gain_sentence

        sentence = gain_sentence(tags['prioritization'])
        if sentence:
            lines.insert(2, sentence)
        manual = tags['manual']
        if manual['ids'] and not manual['matched']:
            lines.append(
                f'None of the {manual["ids"]:,} example ids in {manual["file"]} is in '
                'the analysed split: were the tags made on another data set?'
            )
    not_held = [s for s in slices['slices'] if not s['held']]
    if not held:
        lines.append(
            'No failing slice held up on held-out data: errors look spread out '
            'rather than concentrated in a slice'
            + (f' (best candidate, not confirmed: {not_held[0]["slice"]}).' if not_held else '.')
        )
    if report.get('comparison'):  # what changed since the latest blessed model's report
        lines += comparison_insights(report['comparison'])
    return lines
