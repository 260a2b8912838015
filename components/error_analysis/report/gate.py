"""The slice gate: whether a model may be pushed given the failing slices its report found.

TFMA's blessing guards only the slices someone declared in advance; this guards the ones
ErrorAnalysis found. Modes (the `slice_gate` setting):

  off   always passes.
  new   fails on a new blind spot: a failing slice (finding or refinement) that fails
        significantly more than under the latest blessed model, measured on both models'
        predictions (report/compare.py: paired on the same examples when it can; Bonferroni
        over the failing slices tested, family-wise level `significance`). Being listed for the
        first time is not enough: a refinement inside a finding that persists, failing as
        before, passes. Only a slice nothing measures falls back to "not listed before".
        Without a baseline report (the first model, or open-source Kubeflow, which has no
        resolver for it) there is nothing to compare with and it passes, saying so.
  any   fails on any held finding whose error rate is above `max_slice_error_rate`; for a
        regression, whose mean error (MAE) is more than `max_slice_error_ratio` times the
        rest's (its error rate there is the share above the median error, not a limit anyone
        would set).
"""

from typing import Dict, List, Optional

from blindspot.error_analysis.report import compare
from blindspot.error_analysis.settings import Settings

MODES = ('off', 'new', 'any')
OVERRIDE = 'to push anyway, run with --slice-gate off'


def _pct(x: Optional[float]) -> str:
    return '?' if x is None else f'{100 * x:.0f}%'


def slice_gate(
    report: Dict,
    mode: str,
    max_slice_error_rate: float,
    significance: float,
    wired: Optional[bool] = None,
    max_slice_error_ratio: float = Settings.max_slice_error_ratio,
) -> Dict:
    """{mode, passed, reason, blocking: [{slice, slice_id, error_rate, baseline_error_rate,
    why}], wired} for a built report (with its comparison, if any). `wired`: whether the
    pipeline put its Pusher under the gate (slice_gate_condition); None: not known."""
    blocking: List[Dict] = []
    if mode == 'off':
        reason = 'slice gate off'
    elif mode == 'new':
        comparison = report.get('comparison')
        if comparison is None:
            reason = 'no blessed model to compare with: nothing can be new'
        else:
            for entry in comparison['new'] + comparison['persisting']:
                if compare.is_new(entry, significance):
                    blocking.append(_blocker(entry, _why(entry)))
            reason = 'no failing slice fails significantly more than under the last blessed model'
    elif mode == 'any':
        for s in report['slices']['slices']:
            if not s['held']:
                continue
            if s.get('regression'):
                inside, rest = s['regression']['mean_error'], s['regression']['outside']
                ratio = inside / rest['mean_error'] if rest['mean_error'] else float('inf')
                if ratio > max_slice_error_ratio:
                    why = (
                        f"{ratio:.1f}x the rest's {rest['mean_error']:.3g}, above the "
                        f'{max_slice_error_ratio:g}x limit'
                    )
                    blocking.append(_any_blocker(s, inside, why))
            elif (s['error_rate'] or 0) > max_slice_error_rate:
                why = f'above the {_pct(max_slice_error_rate)} limit'
                blocking.append(_any_blocker(s, s['error_rate'], why))
        if report.get('regression'):
            reason = (
                f"no failing slice with more than {max_slice_error_ratio:g}x the rest's mean error"
            )
        else:
            reason = f'no failing slice above {_pct(max_slice_error_rate)} errors'
    else:
        raise ValueError(f'slice gate mode must be one of {", ".join(MODES)}, got {mode!r}')
    if blocking:
        first = blocking[0]
        more = f' (and {len(blocking) - 1} more)' if len(blocking) > 1 else ''
        metric = (report.get('comparison') or {}).get('metric', 'error rate')
        if mode == 'any' and report.get('regression'):
            now, was = f'mean error {first["error_rate"]:.3g}', None
        elif mode == 'any' or metric != 'MAE':
            now, was = f'{_pct(first["error_rate"])} errors', _pct(first['baseline_error_rate'])
        else:  # a regression measured on both models: its MAE
            now = compare.value_text(first['error_rate'], metric)
            was = compare.value_text(first['baseline_error_rate'], metric)
        reason = (
            f'push blocked by slice {first["slice"]} ({now}'
            + (f', was {was}' if first['baseline_error_rate'] is not None else '')
            + f'): {first["why"]}{more}; {OVERRIDE}'
        )
    return {
        'mode': mode,
        'passed': not blocking,
        'reason': reason,
        'blocking': blocking,
        'wired': wired,
    }


def _any_blocker(finding: Dict, error: float, why: str) -> Dict:
    """A held finding that blocks in mode 'any'; `error`: its error rate, or a regression's
    mean error."""
    return {
        'slice': finding['slice'],
        'slice_id': finding.get('slice_id'),
        'error_rate': error,
        'baseline_error_rate': None,
        'why': why,
    }


def _why(entry: Dict) -> str:
    how = compare.measure_text(entry)
    if entry['measure'] is None:
        return f'new since the last blessed model ({how})'
    return f'fails significantly more than under the last blessed model ({how})'


def _blocker(entry: Dict, why: str) -> Dict:
    after, before = entry.get('current') or {}, entry.get('baseline') or {}
    return {
        'slice': entry['slice'],
        'slice_id': entry.get('slice_id'),
        'error_rate': after.get('error_rate'),
        'baseline_error_rate': before.get('error_rate'),
        'why': why,
    }


def gate_sentence(gate: Dict) -> str:
    """The insight that leads the report when the gate is on."""
    if gate['passed']:
        return f'Slice gate ({gate["mode"]}) passed: {gate["reason"]}.'
    return f'Slice gate ({gate["mode"]}): {gate["reason"]}.'


def not_wired_note(gate: Dict) -> Optional[str]:
    """The insight for a gate that is on but that nothing in the pipeline acts on."""
    if gate['mode'] == 'off' or gate.get('wired') is not False:
        return None
    return (
        'Slice gate not wired: nothing in this pipeline acts on its verdict, so a push does not '
        'wait for it; put the Pusher under '
        'tfx.dsl.Cond(slice_gate_condition(error_analysis)) (README, "Add ErrorAnalysis to '
        "your pipeline\"), or set slice_gate='off'."
    )
