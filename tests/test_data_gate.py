"""Data that breaks the schema stops the pipeline at ExampleValidator, before Trainer."""

import local_runner
from blindspot.pipelines.config import RunConfig, TrainingSettings
from blindspot.pipelines.datasets import dataset_for
from blindspot.review import metadata
from tests.conftest import write_sample


def test_schema_anomalies_stop_before_trainer(tmp_path, capfd):
    def bad_hour(i, row):
        if i % 3 == 0:
            row['trip_start_hour'] = '42'  # outside the schema's 0..23
        return row

    data = write_sample(tmp_path / 'data', rows=600, edit=bad_hour)
    config = RunConfig(
        output_dir=str(tmp_path / 'out'),
        data_root=str(data),
        training=TrainingSettings(train_steps=5),
    )
    assert local_runner.run(config) != 0
    err = capfd.readouterr().err  # the run writes its lines to the console fd itself
    assert 'ExampleValidator failed' in err
    assert "feature 'trip_start_hour'" in err

    store = metadata.open_store(config.output_dir)
    runs = metadata.component_runs(
        store, metadata.latest_run(store, dataset_for(config).pipeline_name)
    )
    assert runs['ExampleValidator'].state == 'FAILED'
    assert 'Transform' not in runs and 'Trainer' not in runs
