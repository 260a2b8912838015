"""TFX's Pusher executor, pushing atomically to a local serving folder (see pipelines/push.py)."""

import os
import shutil
import time
import uuid
from typing import Any, Dict, List

from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from blindspot.pipelines.push import PAUSE_BEFORE_RENAME_ENV, STAGING_PREFIX


class Executor(pusher_executor.Executor):
    """The stock Pusher, pointed at a staging folder inside the serving folder; the version it
    writes there is renamed into the serving folder once complete. Remote destinations
    (gs://...), where a rename is a copy, are pushed as the stock Pusher does."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        key = standard_component_specs.PUSH_DESTINATION_KEY
        destination = proto_utils.json_to_proto(exec_properties[key], pusher_pb2.PushDestination())
        base = destination.filesystem.base_directory
        if destination.WhichOneof('destination') != 'filesystem' or '://' in base:
            super().Do(input_dict, output_dict, exec_properties)
            return
        staging = os.path.join(base, f'{STAGING_PREFIX}{uuid.uuid4().hex[:12]}')
        destination.filesystem.base_directory = staging
        staged = {**exec_properties, key: proto_utils.proto_to_json(destination)}
        try:
            super().Do(input_dict, output_dict, staged)
            pushed = artifact_utils.get_single_instance(
                output_dict[standard_component_specs.PUSHED_MODEL_KEY]
            )
            if not pushed.get_int_custom_property('pushed'):
                return
            version = pushed.get_string_custom_property('pushed_version')
            target = os.path.join(base, version)
            if os.path.exists(target):  # pushed in the same second: keep it, as TFX would
                return
            time.sleep(float(os.environ.get(PAUSE_BEFORE_RENAME_ENV) or 0))
            os.rename(os.path.join(staging, version), target)
            pushed.set_string_custom_property('pushed_destination', target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
