"""The diagnosis glue in Beam (in-process DirectRunner) on planted data, without a model:
synthetic prediction batches go through the label-suspect flag, the slice search and the
per-candidate counting over analysed and training rows."""

import pickle

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from blindspot.error_analysis.beam import diagnosis as beam_diagnosis
from blindspot.error_analysis.beam import slices as beam_slices
from blindspot.error_analysis.beam.analysis import example_row
from blindspot.error_analysis.beam.finding_examples import FindingExamples
from blindspot.error_analysis.beam.predictions import PredictionBatch
from blindspot.error_analysis.search import lattice
from blindspot.error_analysis.settings import Settings

ROWS = 6000


def _planted(seed: int = 0):
    """Zone a (10%): labels at random while the model predicts from the signal, very confident;
    zone b (10%): the model is unsure and wrong half the time, labels consistent; elsewhere
    few mistakes. Training rows: zone b is 1% of them (10% here)."""
    rng = np.random.default_rng(seed)
    zone = rng.choice(np.array(list('abcdefghij'), dtype=object), ROWS)
    truth = rng.integers(0, 2, ROWS)
    labels = truth.copy()
    in_a = zone == 'a'
    labels[in_a] = rng.integers(0, 2, in_a.sum())
    p_truth = np.select([zone == 'a', zone == 'b'], [0.98, 0.55], 0.93)
    flip = (zone != 'a') & (rng.random(ROWS) < np.where(zone == 'b', 0.45, 0.04))
    predicted_truth = np.where(flip, 1 - truth, truth)
    p1 = np.where(predicted_truth == 1, p_truth, 1 - p_truth)
    probabilities = np.column_stack([1 - p1, p1])
    ids = np.array([f'row-{i}' for i in range(ROWS)], dtype=object)
    batches = [
        PredictionBatch(
            ids[s : s + 500],
            labels[s : s + 500],
            probabilities[s : s + 500],
            {'zone': zone[s : s + 500]},
        )
        for s in range(0, ROWS, 500)
    ]
    train_zone = np.array(['b'] * 60 + list('acdefghij') * 660, dtype=object)
    # The model on its training rows: half wrong in zone a (random labels), 5% elsewhere;
    # the last 940 rows were not in the inference sample (NaN).
    train_errors = np.where(
        train_zone == 'a', rng.random(len(train_zone)) < 0.5, rng.random(len(train_zone)) < 0.05
    ).astype(np.float64)
    train_errors[-940:] = np.nan
    train = [
        beam_diagnosis.TrainRows({'zone': train_zone[s : s + 1000]}, train_errors[s : s + 1000])
        for s in range(0, len(train_zone), 1000)
    ]
    return batches, train


def test_planted_random_labels_and_rare_training_region_are_diagnosed(tmp_path):
    batches, train = _planted()
    config = lattice.SliceFinderConfig.from_settings(Settings(), max_predicates=1)

    def save(value, name):
        (tmp_path / name).write_bytes(pickle.dumps(value))

    options = PipelineOptions(['--direct_running_mode=in_memory', '--direct_num_workers=1'])
    with beam.Pipeline(options=options) as pipeline:
        flagged, thresholds = (
            pipeline | 'Batches' >> beam.Create(batches, reshuffle=False)
        ) | beam_diagnosis.FlagLabelSuspects(num_classes=2)
        columns = flagged | beam.Map(
            lambda b: lattice.ColumnBatch({'zone': b.columns['zone']}, b.errors, b.example_ids)
        )
        encoders = columns | beam_slices.BuildEncoders(['zone'])
        discover = beam_slices.DiscoverSlices(encoders, config)
        result = columns | discover
        train_columns = pipeline | 'Train' >> beam.Create(train, reshuffle=False)
        diagnoses = flagged | beam_diagnosis.DiagnoseCandidates(
            ['zone'], encoders, discover.conditions, thresholds, train_columns
        )
        suspects = (
            flagged
            | beam.FlatMap(beam_diagnosis.suspect_rows, 5, example_row)
            | beam.combiners.Top.Of(5, key=lambda r: -r['label_probability'])
        )
        examples = flagged | FindingExamples(
            ['zone'], encoders, discover.conditions, 7, example_row
        )
        _ = result | 'SaveResult' >> beam.Map(save, 'result')
        _ = examples | 'SaveExamples' >> beam.Map(save, 'examples')
        _ = diagnoses | 'SaveDiagnoses' >> beam.Map(save, 'diagnoses')
        _ = suspects | 'SaveSuspects' >> beam.Map(save, 'suspects')
    result = pickle.loads((tmp_path / 'result').read_bytes())
    diagnoses = pickle.loads((tmp_path / 'diagnoses').read_bytes())
    suspects = pickle.loads((tmp_path / 'suspects').read_bytes())
    examples = pickle.loads((tmp_path / 'examples').read_bytes())

    findings = {s.text for s in result.significant_slices}
    assert {'zone = a', 'zone = b'} <= findings
    random_labels = diagnoses['candidates']['zone = a']
    rare = diagnoses['candidates']['zone = b']
    assert random_labels['rule'] == 'label_noise', random_labels
    assert random_labels['inside']['suspect_share_of_errors'] > 0.9
    assert rare['rule'] == 'under_represented', rare
    assert rare['coverage']['train_rows'] == 60
    assert abs(rare['coverage']['analysed_share'] - 0.1) < 0.02
    # The most suspicious examples come from the random-label zone, lowest given-label
    # probability first.
    assert len(suspects) == 5 and all(r['features']['zone'] == 'a' for r in suspects)
    probabilities = [r['label_probability'] for r in suspects]
    assert probabilities == sorted(probabilities) and probabilities[0] < 0.1
    train_zone = np.concatenate([t.columns['zone'] for t in train])
    train_errors = np.concatenate([t.errors for t in train])
    assert diagnoses['overall']['train_rows'] == len(train_zone)
    assert diagnoses['overall']['train_predicted'] == len(train_zone) - 940
    # Train error per finding: the mistakes on its sampled training rows, with an interval.
    sampled_a = (train_zone == 'a') & ~np.isnan(train_errors)
    fit = random_labels['fit']
    assert fit['train_rows'] == sampled_a.sum()
    assert fit['train']['rate'] == pytest.approx(np.nanmean(train_errors[sampled_a]))
    low, high = fit['train']['interval']
    assert low < fit['train']['rate'] < high and 0.4 < low and high < 0.6
    # Under each finding, its own mistakes, the 7 most confident of them first.
    for zone in 'ab':
        rows = examples[f'zone = {zone}']
        assert len(rows) == 7
        assert all(r['features']['zone'] == zone and r['label'] != r['predicted'] for r in rows)
        confidence = [r['confidence'] for r in rows]
        assert confidence == sorted(confidence, reverse=True)
        mistakes = [b.confidence[(b.errors > 0) & (b.columns['zone'] == zone)] for b in batches]
        assert confidence[0] == max(np.concatenate(mistakes))
    assert any(r['label_suspect'] for r in examples['zone = a'])


def test_each_tag_gets_the_diagnosis_of_its_rows_in_the_table(tmp_path):
    from blindspot.error_analysis.beam.analysis import CountTags
    from blindspot.error_analysis.report import build as report_build
    from blindspot.error_analysis.report import html_page
    from blindspot.error_analysis.tags import tag_rules

    batches, train = _planted()
    rules = tag_rules.parse_rules(['random labels: zone == "a"', 'rare in train: zone == "b"'])
    zone = np.concatenate([b.columns['zone'] for b in batches])
    ids = np.concatenate([b.example_ids for b in batches])
    reviewed = ids[zone == 'a'][:50]  # a reviewer tagged 50 of zone a, each for 2 examples
    manual = {str(i): (('reviewed a',), 2.0) for i in reviewed}

    options = PipelineOptions(['--direct_running_mode=in_memory', '--direct_num_workers=1'])
    with beam.Pipeline(options=options) as pipeline:
        flagged, _ = (
            pipeline | 'Batches' >> beam.Create(batches, reshuffle=False)
        ) | beam_diagnosis.FlagLabelSuspects(num_classes=2)
        train_columns = pipeline | 'Train' >> beam.Create(train, reshuffle=False)
        tags = flagged | CountTags(rules, manual, train_columns)
        _ = tags | beam.Map(lambda t: (tmp_path / 'tags').write_bytes(pickle.dumps(t)))
    part = pickle.loads((tmp_path / 'tags').read_bytes())

    counts = part['counts']
    assert part['manual_matched'] == 50
    assert counts['random labels']['rows'] == int((zone == 'a').sum())
    noisy = counts['random labels']['diagnosis']
    assert noisy['rule'] == 'label_noise', noisy
    assert noisy['inside']['rows'] + noisy['outside']['rows'] == ROWS
    rare = counts['rare in train']['diagnosis']
    assert rare['rule'] == 'under_represented', rare
    assert rare['coverage']['train_rows'] == 60
    # A manual tag marks analysed examples only: its rows, unweighted; coverage unknown.
    manual_tag = counts['reviewed a']
    assert (manual_tag['rows'], manual_tag['weight']) == (50, 100.0)
    assert manual_tag['diagnosis']['coverage'] is None
    assert manual_tag['diagnosis']['rule'] != 'under_represented'

    errors = int(np.concatenate([b.errors for b in batches]).sum())
    report = report_build.build_report(
        label_key='y',
        splits=['eval'],
        class_names=['no', 'yes'],
        totals={'confusion': [[ROWS - errors, errors], [0, 0]], 'loss_sum': 1.0},
        slices={
            'config': {'alpha': 0.95, 'max_predicates': 1},
            'overall': {
                'min_support_rows': 10,
                'error_rate': errors / ROWS,
                'rows': ROWS,
                'errors': errors,
            },
            'slices': [],
            'feature_values': [],
            'feature_notes': {},
        },
        hardest=[],
        tfma_rows=[],
        files={},
        tags={**part, 'references': {}, 'manual_ids': len(manual), 'tags_uri': 'sheet.csv'},
    )
    table = {r['tag']: r for r in report['tags']['prioritization']}
    assert table['random labels']['diagnosis'] == noisy
    page = html_page.render(report)
    assert rare['next_step'] in page and noisy['next_step'] in page


def test_train_sample_is_the_same_rows_whatever_the_batching():
    import hashlib

    ids = [hashlib.sha1(str(i).encode()).hexdigest()[:16] for i in range(1000)]
    keys = beam_diagnosis.sample_keys(ids)

    def cutoff(size, chunks):
        fn = beam_diagnosis.SampleCutoffFn(size)
        parts = [
            fn.add_input(fn.create_accumulator(), keys[s : s + chunks])
            for s in range(0, len(keys), chunks)
        ]
        return fn.extract_output(fn.merge_accumulators(parts))

    chosen = beam_diagnosis.in_sample(ids, cutoff(100, 64))
    assert len(chosen) == 100
    assert np.array_equal(chosen, beam_diagnosis.in_sample(ids, cutoff(100, 333)))
    # The sample is the 100 smallest keys: spread over the rows, not the first ones.
    assert np.array_equal(np.sort(keys[chosen]), np.sort(keys)[:100])
    assert 300 < np.median(chosen) < 700
    assert len(beam_diagnosis.in_sample(ids, cutoff(5000, 64))) == 1000  # fewer rows: all
    assert len(beam_diagnosis.in_sample(ids, cutoff(0, 64))) == 0  # --train-sample 0: none
