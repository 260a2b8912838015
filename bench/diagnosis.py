"""Diagnosis benchmark: does each finding get the right next step? Generated CSVs with four
planted causes, each in its own region, run through the real csv pipeline (local_runner, in
this process, as bench/corpus.py runs a table), then every held finding and refinement is
matched to the region holding at least two thirds of its mistakes and its rule compared with
the cause's right next step:

  noise        colour = red AND size = L: labels are coin flips -> the features cannot
               separate these rows (not_separable; main's rules: review these labels)
  missing      colour = green AND size = S: a hidden column, dropped before training, decides
               the label -> not_separable (main's: a missing signal)
  undersampled shape = star AND size = M: its own rule (the label reversed), but only
               UNDERSAMPLED_KEPT of its training rows kept -> collect more (under_represented)
  overfit      shape = hex AND size = M (with more rows than the others): an id-like `code`,
               one per few rows, decides the label at random per code; the eval rows
               have codes never trained on -> the model fits its training rows, not these
               (variance, or shortcut when the mistakes are confident)

Elsewhere the label is x > 0.5, with BASE_FLIPS of the labels flipped at random (known rows:
the label-suspect measure below). "Before" runs main's code (its venv, default
/work/main/.venv) on the same CSVs; "after" this worktree's. Also printed: for the binary
label-suspect rule, how many flagged rows are among the flipped ones (precision) and how many
flipped rows are flagged (recall), and how many false positives in the noise region are
flagged, before and after.

    python bench/diagnosis.py                   # 5 seeds, before and after
    python bench/diagnosis.py --seeds 1 --no-before --out /tmp/diag   # keep the outputs
    python bench/diagnosis.py --out /tmp/diag --rejudge     # judge those reports again
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402  (puts the project on the path, sets TensorFlow's environment)

ROWS = 4000
TRAIN_STEPS = 1000
BASE_FLIPS = 0.03
UNDERSAMPLED_KEPT = 0.02
CODES_PER_POOL = 40  # 81 distinct codes with 'none': each gets its own id (VOCAB_TOP_K)
OVERFIT_EXTRA = 2.5
LABEL = 'y'
REGIONS = {
    'noise': {'colour': 'red', 'size': 'L'},
    'missing': {'colour': 'green', 'size': 'S'},
    'undersampled': {'shape': 'star', 'size': 'M'},
    'overfit': {'shape': 'hex', 'size': 'M'},
}
# The rules that are the right next step for each cause, in main's rules and in these.
RIGHT = {
    'noise': {'not_separable', 'label_noise'},
    'missing': {'not_separable', 'missing_signal'},
    'undersampled': {'under_represented'},
    'overfit': {'variance', 'shortcut'},
}
OWN_SHARE = 2 / 3  # of a finding's mistakes in one region, for the finding to be about it
MAIN_VENV_PYTHON = '/work/main/.venv/bin/python'


def _in(frame: pd.DataFrame, region: Dict[str, str]) -> np.ndarray:
    inside = np.ones(len(frame), dtype=bool)
    for column, value in region.items():
        inside &= (frame[column] == value).to_numpy()
    return inside


def generate(seed: int, rows: int = ROWS) -> pd.DataFrame:
    """The table before the split is known (and with its hidden and bookkeeping columns:
    `hidden`, `flipped`, `pool`), see the module docstring."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            'colour': rng.choice(['red', 'green', 'blue', 'yellow'], rows),
            'size': rng.choice(['S', 'M', 'L'], rows),
            'shape': rng.choice(['circle', 'square', 'star', 'hex'], rows),
            'x': np.round(rng.random(rows), 6),
        }
    )
    # The overfit region gets OVERFIT_EXTRA times its share more rows: half of them end up
    # dropped (training_table).
    extra = frame.sample(int(rows * OVERFIT_EXTRA / 12), random_state=seed, replace=True)
    extra = extra.assign(shape='hex', size='M', x=np.round(rng.random(len(extra)), 6))
    frame = pd.concat([frame, extra], ignore_index=True)
    rows = len(frame)
    label = frame['x'].to_numpy() > 0.5
    flipped = rng.random(rows) < BASE_FLIPS
    label = label ^ flipped
    noise = _in(frame, REGIONS['noise'])
    label[noise] = rng.random(noise.sum()) < 0.5
    hidden = rng.random(rows) < 0.5
    missing = _in(frame, REGIONS['missing'])
    label[missing] = hidden[missing]
    under = _in(frame, REGIONS['undersampled'])
    label[under] = frame['x'].to_numpy()[under] <= 0.5
    overfit = _in(frame, REGIONS['overfit'])
    codes = np.full(rows, 'none', dtype=object)
    # Half the region's rows draw from codes meant for training (k...), half from codes meant
    # for the eval split (e...); training_table drops those the split puts on the other side.
    pool = np.where(rng.random(overfit.sum()) < 0.5, 'k', 'e')
    groups = CODES_PER_POOL
    group = rng.integers(0, groups, overfit.sum())
    code_labels = rng.random((2, groups)) < 0.5
    codes[overfit] = [f'{p}{g:03d}' for p, g in zip(pool, group)]
    label[overfit] = code_labels[(pool == 'e').astype(int), group]
    frame['code'] = codes
    frame[LABEL] = np.where(label, 'yes', 'no')
    frame['flipped'] = flipped & ~(noise | missing | under | overfit)
    frame['hidden'] = hidden
    return frame


def training_table(frame: pd.DataFrame, seed: int, work: Path) -> pd.DataFrame:
    """What the pipeline reads: the hidden column dropped; in the under-sampled region only
    UNDERSAMPLED_KEPT of the rows the train split holds; in the overfit region only rows whose
    code was meant for the split that holds them (the split is a hash of each row's bytes:
    dropping rows moves no other row)."""
    rng = np.random.default_rng(seed + 1000)
    visible = frame.drop(columns=['flipped', 'hidden'])
    evaluated = _eval_mask(visible, work)
    overfit = _in(frame, REGIONS['overfit'])
    meant_for_eval = frame['code'].str.startswith('e').to_numpy()
    keep = ~overfit | (evaluated == meant_for_eval)
    under = _in(frame, REGIONS['undersampled'])
    keep &= ~(under & ~evaluated) | (rng.random(len(frame)) < UNDERSAMPLED_KEPT)
    kept = visible[keep].reset_index(drop=True)
    kept.attrs['evaluated'] = evaluated[keep]
    kept.attrs['flipped'] = frame['flipped'].to_numpy()[keep]
    return kept


def _eval_mask(frame: pd.DataFrame, work: Path) -> np.ndarray:
    path = work / 'split-check.csv'
    frame.to_csv(path, index=False)
    mask = np.zeros(len(frame), dtype=bool)
    mask[corpus.eval_rows(path)] = True
    return mask


def finding_rows(finding: Dict, table: pd.DataFrame) -> np.ndarray:
    """(rows,) bool: the table's rows in the finding, from its predicates as the report states
    them (a category by its label 'feature = value', a range by its bounds)."""
    inside = np.ones(len(table), dtype=bool)
    for p in finding['predicates']:
        values = table[p['feature']]
        if p.get('is_range'):
            numbers = values.to_numpy(dtype=np.float64)
            if p.get('low') is not None:
                inside &= numbers >= p['low']
            if p.get('high') is not None:
                inside &= numbers < p['high']
        else:
            inside &= (values.astype(str) == p['label'].split(' = ', 1)[1]).to_numpy()
    return inside


def region_of(finding: Dict, predictions: pd.DataFrame) -> Optional[str]:
    """The planted region holding at least OWN_SHARE of the finding's mistakes (None: no
    region does: a finding on the base rule's boundary, or one that mixes two causes, whose
    refinements are judged on their own)."""
    wrong = finding_rows(finding, predictions) & ~predictions['correct'].to_numpy()
    for cause, region in REGIONS.items():
        if wrong.sum() and (wrong & _in(predictions, region)).sum() >= OWN_SHARE * wrong.sum():
            return cause
    return None


def predictions_of(report: Dict) -> pd.DataFrame:
    """The run's per-example predictions, its feature columns by their names."""
    frame = pd.concat(
        pd.read_parquet(p) for p in glob.glob(os.path.join(_report_dir(report), 'predictions', '*'))
    )
    return frame.rename(columns=lambda c: c.split('.', 1)[1] if c.startswith('feature.') else c)


def _report_json(output_dir: Path) -> Optional[Dict]:
    paths = sorted(glob.glob(str(output_dir / '**' / 'report.json'), recursive=True))
    paths = [p for p in paths if '/ErrorAnalysis/' in p]
    if not paths:
        return None
    with open(max(paths, key=os.path.getmtime)) as f:
        return json.load(f)


def run(data: Path, output_dir: Path, python: Optional[str], train_steps: int) -> Dict:
    """One csv-pipeline run on `data`: in this process (python None) or with another venv's
    python running that repo's local_runner.py; returns its report.json."""
    argv = corpus.runner_args(data, LABEL, output_dir, train_steps)
    start = time.time()
    if python is None:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            status = corpus.local_runner.run(corpus.local_runner.parse_args(argv))
    else:
        root = Path(python).absolute().parent.parent.parent  # <repo>/.venv/bin/python
        done = subprocess.run(
            [python, str(root / 'local_runner.py'), *argv],
            capture_output=True,
            text=True,
            cwd=root,
            env={**os.environ, 'TF_USE_LEGACY_KERAS': '1'},
        )
        status = done.returncode
        if status != 0:
            raise RuntimeError(f'{python} on {data}: {corpus._first_error(done.stderr)}')
    report = _report_json(output_dir)
    if status != 0 or report is None:
        raise RuntimeError(f'run on {data} failed (status {status}); see {output_dir}')
    report['seconds'] = time.time() - start
    report['output_dir'] = str(output_dir)
    return report


def judge(report: Dict, current_rules: bool = False) -> List[Dict]:
    """Each held finding and refinement: the region it lies in and whether its rule is right
    (current_rules: the rule this code's next_step gives on the evidence the run counted, as
    a run of this code writes it, so --rejudge measures edited rules without rerunning)."""
    from blindspot.error_analysis.search.diagnosis import next_step

    predictions = predictions_of(report)
    judged = []
    for s in report['slices']['slices']:
        if not s['held'] or not s.get('diagnosis'):
            continue
        cause = region_of(s, predictions)
        rule = next_step(s['diagnosis'])[0] if current_rules else s['diagnosis']['rule']
        judged.append(
            {
                'slice': s['slice'],
                'cause': cause,
                'rule': rule,
                'right': cause is not None and rule in RIGHT[cause],
                'next_step': s['diagnosis']['next_step'],
            }
        )
    return judged


def suspect_scores(report: Dict, table: pd.DataFrame) -> Dict:
    """Label suspects against the rows whose label was flipped (outside the regions), and the
    noise region's false positives flagged, from the run's per-example predictions."""
    predictions = predictions_of(report)
    evaluated = table[table.attrs['evaluated']].assign(
        flipped=table.attrs['flipped'][table.attrs['evaluated']]
    )
    key = ['colour', 'size', 'shape', 'x']
    predictions['x'] = predictions['x'].round(6)
    joined = predictions.merge(evaluated[key + ['flipped']], on=key, how='inner')
    suspects = joined['label_suspect'].to_numpy()
    flipped = joined['flipped'].to_numpy()
    noise = _in(joined, REGIONS['noise'])
    minority = int(joined['label'].value_counts().idxmin())
    false_positive = (joined['predicted'] == minority) & (joined['label'] != minority)
    return {
        'suspects': int(suspects.sum()),
        'flagged_flipped': int((suspects & flipped).sum()),
        'flipped': int(flipped.sum()),
        'noise_false_positives': int((noise & false_positive).sum()),
        'noise_false_positives_flagged': int((noise & false_positive & suspects).sum()),
    }


def _report_dir(report: Dict) -> str:
    paths = glob.glob(os.path.join(report['output_dir'], '**', 'report.json'), recursive=True)
    return os.path.dirname(max((p for p in paths if '/ErrorAnalysis/' in p), key=os.path.getmtime))


def toss_up_suspects(seed: int, rows: int = 20_000) -> Dict[str, Dict]:
    """The binary suspect rule on a telco-like case, without a model: a minority class (about
    a quarter of the rows) whose mean probability is near 0.5; in a toss-up region (half the
    rows) the outcome is a coin with P(yes) = 0.45, which a calibrated model predicts as such;
    elsewhere the model is sure (0.8) and right but for BASE_FLIPS of the labels, flipped. Per
    rule: false positives in the toss-up region flagged, and precision and recall on the
    flipped labels ('main': confident learning as main has it, the same rows with a third,
    empty class; 'this': with BINARY_SUSPECT_CONFIDENCE)."""
    from blindspot.error_analysis.search import diagnosis

    rng = np.random.default_rng(seed)
    toss_up = rng.random(rows) < 0.5
    p_yes = np.where(toss_up, np.clip(0.45 + rng.normal(0, 0.08, rows), 0.01, 0.99), 0.0)
    truth = np.where(toss_up, rng.random(rows) < p_yes, rng.random(rows) < 0.08)
    p_yes = np.where(toss_up, p_yes, np.where(truth, 0.8, 0.06) + rng.normal(0, 0.03, rows))
    p_yes = np.clip(p_yes, 0.001, 0.999)
    flipped = ~toss_up & (rng.random(rows) < BASE_FLIPS)
    labels = (truth ^ flipped).astype(np.int64)
    probabilities = np.column_stack([1 - p_yes, p_yes])
    thresholds = diagnosis.class_thresholds(
        diagnosis.class_probability_sums(probabilities, labels, 2)
    )
    rules = {
        'main': diagnosis.label_suspects(
            np.column_stack([probabilities, np.zeros(rows)]), labels, np.append(thresholds, np.nan)
        ),
        'this': diagnosis.label_suspects(probabilities, labels, thresholds),
    }
    false_positive = toss_up & (p_yes > 0.5) & (labels == 0)
    return {
        name: {
            'thresholds': thresholds.round(3).tolist(),
            'toss_up_fp_flagged': f'{int((flags & false_positive).sum())} of '
            f'{int(false_positive.sum())}',
            'precision': float((flags & flipped).sum() / max(flags.sum(), 1)),
            'recall': float((flags & flipped).sum() / max(flipped.sum(), 1)),
        }
        for name, flags in rules.items()
    }


def _share(judged: Sequence[Dict], cause: str) -> str:
    mine = [j for j in judged if j['cause'] == cause]
    if not mine:
        return 'no finding'
    right = sum(j['right'] for j in mine)
    ambiguous = sum(j['rule'] == 'ambiguous' for j in mine)
    return f'{right}/{len(mine)} = {100 * right / len(mine):.0f}% (ambiguous {ambiguous})'


def _rules(judged: Sequence[Dict], cause: str) -> str:
    counts: Dict[str, int] = {}
    for j in judged:
        if j['cause'] == cause:
            counts[j['rule']] = counts.get(j['rule'], 0) + 1
    return ', '.join(f'{r} {n}' for r, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _suspect_line(name: str, scores: Sequence[Dict]) -> str:
    total = {k: sum(s[k] for s in scores) for k in scores[0]}
    precision = total['flagged_flipped'] / max(total['suspects'], 1)
    recall = total['flagged_flipped'] / max(total['flipped'], 1)
    return (
        f'{name:7s} {total["suspects"]:9d} {100 * precision:9.0f}% {100 * recall:7.0f}% '
        f'{total["noise_false_positives_flagged"]:6d} of {total["noise_false_positives"]:d}'
    )


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--seeds', type=int, default=5)
    p.add_argument('--rows', type=int, default=ROWS)
    p.add_argument('--train-steps', type=int, default=TRAIN_STEPS)
    p.add_argument('--before-python', default=MAIN_VENV_PYTHON, help="main's venv python")
    p.add_argument('--no-before', action='store_true', help="skip the runs of main's code")
    p.add_argument('--out', metavar='DIR', help='work here and keep the outputs')
    p.add_argument(
        '--rejudge', action='store_true', help='judge the reports an earlier run left in --out'
    )
    args = p.parse_args(argv)
    if args.rejudge and not args.out:
        p.error('--rejudge reads the reports of an earlier run: give its --out')
    work = Path(args.out or tempfile.mkdtemp(prefix='bench-diagnosis-'))
    work.mkdir(parents=True, exist_ok=True)
    versions = {'after': None} if args.no_before else {'before': args.before_python, 'after': None}
    judged: Dict[str, List[Dict]] = {v: [] for v in versions}
    suspects: Dict[str, List[Dict]] = {v: [] for v in versions}
    for seed in range(args.seeds):
        folder = work / f'seed{seed}'
        folder.mkdir(exist_ok=True)
        table = training_table(generate(seed, args.rows), seed, folder)
        data = folder / 'planted.csv'
        table.to_csv(data, index=False)
        for version, python in versions.items():
            if args.rejudge:  # the report an earlier run with this --out left
                report = {**_report_json(folder / version), 'seconds': 0.0}
                report['output_dir'] = str(folder / version)
            else:
                report = run(data, folder / version, python, args.train_steps)
            found = judge(report, current_rules=python is None)
            judged[version] += found
            suspects[version].append(suspect_scores(report, table))
            rules = '; '.join(f'{j["slice"]} -> {j["rule"]}' for j in found)
            print(f'seed {seed} {version} ({report["seconds"]:.0f} s): {rules}', flush=True)
    print(f'\n{args.seeds} seeds, {args.rows} rows, {args.train_steps} train steps')
    print(f'{"cause":13s} ' + ' '.join(f'{v + " (right)":34s}' for v in versions))
    for cause in REGIONS:
        print(f'{cause:13s} ' + ' '.join(f'{_share(judged[v], cause):34s}' for v in versions))
    for version in versions:
        print(f'\nrules given, {version}:')
        for cause in [*REGIONS, None]:
            print(f'  {cause or "no/mixed":13s} {_rules(judged[version], cause)}')
    print('\nlabel suspects (binary rule) against the flipped labels outside the regions:')
    print(f'{"":7s} {"suspects":>9s} {"precision":>10s} {"recall":>8s}  noise-region FPs flagged')
    for version in versions:
        print(_suspect_line(version, suspects[version]))
    print('\nthe same rule on a telco-like toss-up region (no model, seed 0):')
    for name, result in toss_up_suspects(0).items():
        print(
            f'{name:7s} thresholds {result["thresholds"]}: toss-up false positives flagged '
            f'{result["toss_up_fp_flagged"]}; flipped labels: precision '
            f'{100 * result["precision"]:.0f}%, recall {100 * result["recall"]:.0f}%'
        )
    print(f'\nload average: {os.getloadavg()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
