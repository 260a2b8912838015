"""The two helpers that wire ErrorAnalysis into a TFX DAG: the baseline resolver and the
Pusher's gate condition.

    from blindspot import ErrorAnalysis, latest_blessed_report, slice_gate_condition

    baseline = latest_blessed_report()
    error_analysis = ErrorAnalysis(..., baseline_report=baseline.outputs['report'])
    with tfx.dsl.Cond(slice_gate_condition(error_analysis)):
        pusher = tfx.components.Pusher(model=trainer.outputs['model'], ...)
    # components: [..., baseline, error_analysis, pusher]
"""

from typing import Union

from tfx import types
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.placeholder import placeholder as ph
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from blindspot.error_analysis import spec
from blindspot.error_analysis.artifact import ErrorAnalysisReport
from blindspot.error_analysis.baseline import LatestBlessedModelReportStrategy
from blindspot.error_analysis.report import files

RESOLVER_ID = 'latest_blessed_report_resolver'


def latest_blessed_report(resolver_id: str = RESOLVER_ID) -> Resolver:
    """A Resolver node whose output 'report' is the ErrorAnalysisReport of the latest blessed
    model (the model TFX's LatestBlessedModelStrategy picks, as the Evaluator compares with),
    or nothing before a model is blessed. Pass `.outputs['report']` as ErrorAnalysis's
    `baseline_report` and add the node to the pipeline's components. With it, the report
    compares its failing slices with that model's, and the slice gate's default mode ('new')
    can tell a new blind spot from an old one.

    Runs where TFX resolves inputs itself (LocalDagRunner, any portable orchestrator). The
    Kubeflow V2 compiler compiles only TFX's built-in strategies: leave it out there (the gate
    then has nothing to compare with; use slice_gate='any')."""
    return Resolver(
        strategy_class=LatestBlessedModelReportStrategy,
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        report=Channel(type=ErrorAnalysisReport),
    ).with_id(resolver_id)


def slice_gate_condition(error_analysis: Union['types.BaseChannel', object]) -> ph.Predicate:
    """The predicate that is true when the report's slice gate passed, for tfx.dsl.Cond:

        with tfx.dsl.Cond(slice_gate_condition(error_analysis)):
            pusher = tfx.components.Pusher(...)

    `error_analysis`: the ErrorAnalysis component or its outputs['report']. It also records on
    the component that its gate is wired; a report whose gate is on but not wired says so (a
    note in its insights), since nothing then stops the push."""
    from blindspot.error_analysis.component import ErrorAnalysis

    if isinstance(error_analysis, ErrorAnalysis):
        component, report = error_analysis, error_analysis.outputs[spec.REPORT_KEY]
    else:
        report = error_analysis
        component = getattr(report, 'producer_component', None)
        if not isinstance(getattr(report, 'type', None), type) or not issubclass(
            report.type, ErrorAnalysisReport
        ):
            raise TypeError(
                'slice_gate_condition takes the ErrorAnalysis component or its '
                f"outputs['report'], got {error_analysis!r}"
            )
    if isinstance(component, ErrorAnalysis):
        component.exec_properties[spec.GATE_WIRED_KEY] = 1
    return report.future()[0].custom_property(files.SLICE_GATE_PASSED) == 1
