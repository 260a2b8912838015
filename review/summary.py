"""The end-of-run summary, read back from ML Metadata and the artifacts it points to."""

import os
from typing import Callable, Dict, Tuple

import blindspot.error_analysis as error_analysis
from blindspot import review
from blindspot.pipelines.config import RunConfig
from blindspot.pipelines.datasets import dataset_for
from blindspot.review import metadata

WORST_SLICES_SHOWN = 3


def _accuracy(metrics: Dict) -> float:
    return next((metrics[k] for k in error_analysis.ACCURACY_KEYS if k in metrics), float('nan'))


def _mae(metrics: Dict) -> float:
    return metrics.get('mean_absolute_error', float('nan'))


def _blessing_rule(config: RunConfig) -> Tuple[str, str, Callable[[Dict], float], int]:
    """How the model was blessed, and the metric shown per slice: its name, how to read it,
    and the sign that puts the worst slices first (lowest accuracy, highest error)."""
    if dataset_for(config).task != 'regression':
        return f'accuracy threshold {config.training.min_accuracy}', 'Accuracy', _accuracy, 1
    training = config.training
    if training.max_mae is not None:
        rule = f'MAE at most {training.max_mae:g}'
    elif training.max_rmse is not None:
        rule = f'RMSE at most {training.max_rmse:g}'
    else:
        rule = "RMSE at most the label's standard deviation"
    return rule, 'Mean absolute error', _mae, -1


def print_summary(
    config: RunConfig,
    pipeline_name: str,
    run_id: str,
    seconds: Dict[str, float],
    total_seconds: float,
) -> None:
    """The summary of run `run_id`: the run this process executed, never just the latest."""
    run = review.get_run(config.output_dir, run_id, pipeline=pipeline_name)
    print(f'\n== {pipeline_name}: run {run.run_id} finished in {total_seconds:.0f} s ==')
    print('Components:')
    for name, component in run.components.items():
        took = f'{seconds[name]:6.1f} s' if name in seconds else '       '
        print(f'  {name:32s} {took}  {component.state.lower()}')
    rule, metric_name, metric, worst_first = _blessing_rule(config)
    print(f'Model blessed: {"yes" if run.blessed else "no"} ({rule})')
    if run.report is not None:
        gate = (run.report_json() or {}).get('gate')
        if gate:
            verdict = 'passed' if gate['passed'] else 'BLOCKED'
            print(f'Slice gate ({gate["mode"]}): {verdict}: {gate["reason"]}')
        print(f'Model pushed: {"yes" if run.model_pushed else "no"}')
    evaluation = run.evaluation
    if evaluation is not None:
        rows = run.tfma_rows()
        print(f'{metric_name} by slice (eval split; worst slices of 30+ examples per feature):')
        for row in rows:
            if not row['features']:
                print(
                    f'  {"Overall":58s} {metric(row["metrics"]):.3f}  '
                    f'(n={int(row["metrics"].get("example_count", 0))})'
                )
        for feature in sorted({tuple(r['features']) for r in rows if r['features']}):
            group = [
                r
                for r in rows
                if tuple(r['features']) == feature and r['metrics'].get('example_count', 0) >= 30
            ]
            group.sort(key=lambda r: worst_first * metric(r['metrics']))
            for row in group[:WORST_SLICES_SHOWN]:
                print(
                    f'  {row["slice"][:58]:58s} {metric(row["metrics"]):.3f}  '
                    f'(n={int(row["metrics"]["example_count"])})'
                )
            if len(group) > WORST_SLICES_SHOWN:
                print(f'  {"":58s} ... {len(group) - WORST_SLICES_SHOWN} more in the report')
    print('Paths:')
    for label, artifact in (('model', run.model), ('evaluation', evaluation)):
        if artifact is not None:
            print(f'  {label:12s} {artifact.uri}')
    print(f'  {"metadata":12s} {metadata.sqlite_path(os.path.abspath(config.output_dir))}')
    if run.report is not None:
        print(f'  {"report":12s} {os.path.join(run.report.uri, error_analysis.files.REPORT_HTML)}')
        insights = run.insights()
        if insights:
            print('Error analysis:')
            for line in insights:
                print(f'  - {line}')
