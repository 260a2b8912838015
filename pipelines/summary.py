"""The end-of-run summary, read back from ML Metadata and the artifacts it points to."""
import json
import os
from typing import Dict

from pipelines import metadata
from pipelines.config import RunConfig

ACCURACY_KEYS = ('binary_accuracy', 'accuracy', 'sparse_categorical_accuracy')
WORST_SLICES_SHOWN = 3


def run_outcome(output_dir: str, pipeline_name: str) -> Dict:
    """What the latest run produced: component states, blessing, artifacts' URIs."""
    store = metadata.open_store(output_dir)
    run = metadata.latest_run(store, pipeline_name)
    runs = metadata.component_runs(store, run)
    blessing = metadata.output_artifact(runs, 'Evaluator', 'blessing')
    report = metadata.output_artifact(runs, 'ErrorAnalysis', 'report')
    return {
        'run_id': run.name,
        'states': {name: r.state for name, r in runs.items()},
        'blessed': bool(blessing and metadata.custom_value(blessing, 'blessed')),
        'model': metadata.output_artifact(runs, 'Trainer', 'model'),
        'evaluation': metadata.output_artifact(runs, 'Evaluator', 'evaluation'),
        'report': report,
        'pushed': metadata.output_artifact(runs, 'Pusher', 'pushed_model'),
    }


def _accuracy(metrics: Dict) -> float:
    return next((metrics[k] for k in ACCURACY_KEYS if k in metrics), float('nan'))


def print_summary(config: RunConfig, seconds: Dict[str, float], total_seconds: float) -> None:
    from components.error_analysis.tfma_metrics import sliced_metrics
    outcome = run_outcome(config.output_dir, config.pipeline_name)
    print(f"\n== {config.pipeline_name}: run {outcome['run_id']} "
          f'finished in {total_seconds:.0f} s ==')
    print('Components:')
    for name, state in outcome['states'].items():
        took = f'{seconds[name]:6.1f} s' if name in seconds else '       '
        print(f'  {name:32s} {took}  {state.lower()}')
    print(f"Model blessed: {'yes' if outcome['blessed'] else 'no'}"
          f" (accuracy threshold {config.min_accuracy})")
    evaluation = outcome['evaluation']
    if evaluation is not None:
        rows = sliced_metrics(evaluation.uri)
        print('Accuracy by slice (eval split; worst slices of 30+ examples per feature):')
        for row in rows:
            if not row['features']:
                print(f"  {'Overall':58s} {_accuracy(row['metrics']):.3f}  "
                      f"(n={int(row['metrics'].get('example_count', 0))})")
        for feature in sorted({tuple(r['features']) for r in rows if r['features']}):
            group = [r for r in rows if tuple(r['features']) == feature
                     and r['metrics'].get('example_count', 0) >= 30]
            group.sort(key=lambda r: _accuracy(r['metrics']))
            for row in group[:WORST_SLICES_SHOWN]:
                print(f"  {row['slice'][:58]:58s} {_accuracy(row['metrics']):.3f}  "
                      f"(n={int(row['metrics']['example_count'])})")
            if len(group) > WORST_SLICES_SHOWN:
                print(f"  {'':58s} ... {len(group) - WORST_SLICES_SHOWN} more in the report")
    print('Paths:')
    for label, artifact in (('model', outcome['model']), ('evaluation', evaluation)):
        if artifact is not None:
            print(f'  {label:12s} {artifact.uri}')
    print(f"  {'metadata':12s} {metadata.sqlite_path(os.path.abspath(config.output_dir))}")
    report = outcome['report']
    if report is not None:
        print(f"  {'report':12s} {os.path.join(report.uri, 'report.html')}")
        with open(os.path.join(report.uri, 'report.json')) as f:
            insights = json.load(f).get('insights', [])
        if insights:
            print('Error analysis:')
            for line in insights:
                print(f'  - {line}')
