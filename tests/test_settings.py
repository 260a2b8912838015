"""One home for every ErrorAnalysis setting: each is reachable, with the same name and check,
from the local runner's flags, the Kubeflow compiler's flags and its YAML config, and survives
the trip through exec properties (as Kubeflow hands them back)."""

import argparse
import dataclasses
import json

import pytest

import local_runner
from blindspot.error_analysis.settings import Settings, SettingsError, flag_name, kind_of
from blindspot.kubeflow import runner

# A value other than the default for every setting, and how it is written on a command line.
CHANGED = {
    'task': ('regression', ['--analysis-task', 'regression']),
    'regression_error': ('squared', ['--regression-error', 'squared']),
    'splits': (('train', 'eval'), ['--split', 'train', '--split', 'eval']),
    'slice_features': (('payment_type',), ['--slice-feature', 'payment_type']),
    'num_bins': (7, ['--num-bins', '7']),
    'max_values_per_feature': (9, ['--max-values-per-feature', '9']),
    'max_predicates': (2, ['--max-predicates', '2']),
    'min_slice_size': (0.03, ['--min-slice-size', '0.03']),
    'num_slices': (4, ['--num-slices', '4']),
    'significance': (0.05, ['--significance', '0.05']),
    'num_hardest_examples': (3, ['--num-hardest-examples', '3']),
    'mistakes_per_finding': (7, ['--mistakes-per-finding', '7']),
    'slice_gate': ('off', ['--slice-gate', 'off']),
    'max_slice_error_rate': (0.3, ['--max-slice-error-rate', '0.3']),
    'max_slice_error_ratio': (3.0, ['--max-slice-error-ratio', '3']),
    'tags_file': ('reviewed.csv', ['--tags', 'reviewed.csv']),
    'tag_rules': (
        ('night: trip_start_hour >= 22',),
        ['--tag-rule', 'night: trip_start_hour >= 22'],
    ),
    'tag_references': ({'night': 0.9}, ['--tag-reference', 'night=0.9']),
    'train_sample': (5000, ['--train-sample', '5000']),
    'human_level': (0.95, ['--human-level', '0.95']),
}
KUBEFLOW_REQUIRED = ['--image', 'r.example.com/b:1', '--pipeline-root', 'gs://bucket/root']


def test_every_setting_has_a_changed_value_here():
    assert set(CHANGED) == {f.name for f in dataclasses.fields(Settings)}
    for name, (value, _) in CHANGED.items():
        assert value != getattr(Settings(), name), name


@pytest.mark.parametrize('name', sorted(CHANGED))
def test_local_runner_flag(name):
    value, argv = CHANGED[name]
    config = local_runner.parse_args(argv)
    assert getattr(config.error_analysis, name) == value
    others = {n for n in CHANGED if n != name}
    assert all(getattr(config.error_analysis, n) == getattr(Settings(), n) for n in others)


@pytest.mark.parametrize('name', sorted(CHANGED))
def test_kubeflow_flag_and_yaml(name):
    value, argv = CHANGED[name]
    flags = runner.parse_args(KUBEFLOW_REQUIRED + argv)
    assert getattr(runner.resolve_settings(flags, {}).error_analysis, name) == value
    yaml_value = (
        dict(value)
        if isinstance(value, dict)
        else (list(value) if isinstance(value, tuple) else value)
    )
    config = runner.parse_config({'error_analysis': {name: yaml_value}})
    flags = runner.parse_args(KUBEFLOW_REQUIRED)
    assert getattr(runner.resolve_settings(flags, config).error_analysis, name) == value


def test_flags_override_the_config_file():
    config = runner.parse_config({'error_analysis': {'max_predicates': 1, 'num_slices': 3}})
    flags = runner.parse_args(KUBEFLOW_REQUIRED + ['--max-predicates', '2'])
    settings = runner.resolve_settings(flags, config).error_analysis
    assert (settings.max_predicates, settings.num_slices) == (2, 3)


def test_exec_properties_round_trip_as_kubeflow_returns_them():
    settings = Settings(**{name: value for name, (value, _) in CHANGED.items()})
    properties = settings.to_exec_properties()
    assert all(isinstance(v, (str, int, float)) for v in properties.values())
    # KFP hands integer parameters back as doubles.
    as_kfp = {k: float(v) if isinstance(v, int) else v for k, v in properties.items()}
    assert Settings.from_exec_properties(as_kfp) == settings


@pytest.mark.parametrize(
    'name,bad,message',
    [
        ('num_slices', 0, 'whole number of at least 1'),
        ('min_slice_size', 1.5, 'whole row count'),
        ('significance', 1.0, 'between 0 and 1'),
        ('tag_rules', ['night trip_start_hour'], "should look like 'name:"),
        ('tag_references', {'night': 2}, 'accuracies between 0 and 1'),
        ('splits', [], 'at least one split'),
        ('slice_gate', 'maybe', 'one of off, new, any'),
        ('max_slice_error_ratio', 0.5, 'ratio of at least 1'),
    ],
)
def test_bad_values_name_the_setting_in_each_front_end(name, bad, message):
    field = next(f for f in dataclasses.fields(Settings) if f.name == name)
    with pytest.raises(SettingsError, match=f'^{flag_name(field)} .*{message}'):
        Settings(**{name: bad})
    with pytest.raises(runner.SettingsError, match=f'error_analysis.{name} .*{message}'):
        runner.parse_config({'error_analysis': {name: bad}})


def test_unknown_yaml_setting_is_refused_with_the_known_ones():
    with pytest.raises(runner.SettingsError, match='unknown error_analysis setting.*num_bins'):
        runner.parse_config({'error_analysis': {'bins': 3}})


def test_local_runner_refuses_a_bad_tag_reference(capsys):
    with pytest.raises(SystemExit):
        local_runner.parse_args(['--tag-reference', 'night'])
    assert 'TAG=ACCURACY' in capsys.readouterr().err


def test_help_shows_each_default_once():
    parser = argparse.ArgumentParser()
    Settings.add_flags(parser)
    text = parser.format_help()
    for field in dataclasses.fields(Settings):
        assert flag_name(field) in text
        if kind_of(field) in (int, float):
            assert f'(default: {field.default})' in ' '.join(text.split())


def test_exec_property_lists_travel_as_json():
    properties = Settings(slice_features=('a', 'b')).to_exec_properties()
    assert json.loads(properties['slice_features']) == ['a', 'b']


def test_open_source_kubeflow_gates_on_any_held_finding(capsys):
    flags = runner.parse_args(KUBEFLOW_REQUIRED)
    assert runner.resolve_settings(flags, {}).error_analysis.slice_gate == 'any'
    assert "mode 'any'" in capsys.readouterr().err
    flags = runner.parse_args(KUBEFLOW_REQUIRED + ['--target', 'vertex'])
    assert runner.resolve_settings(flags, {}).error_analysis.slice_gate == 'new'
