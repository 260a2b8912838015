"""Atomic model pushes: a model version appears in the serving folder complete or not at all.

TFX's Pusher copies the model file by file into <serving folder>/<version>/, so a process
killed meanwhile left a version folder without a model as the newest version, which a model
server watching the folder would try to load. The Pusher here (pipelines/push_executor.py)
writes the version into a staging folder next to the versions (its name starts with
STAGING_PREFIX, which no model server reads as a version) and renames it into place once
complete: one rename on one file system. `sweep` removes what a killed push leaves.

Light (standard library only): the sweep runs before TensorFlow is imported.
"""

import shutil
from pathlib import Path
from typing import List

STAGING_PREFIX = '.pushing-'
# Fault injection for the reliability tests: seconds the Pusher waits with a version fully
# staged, before its rename (a small model is staged in milliseconds, too briefly to kill a run
# there on purpose). Unset in normal runs.
PAUSE_BEFORE_RENAME_ENV = 'BLINDSPOT_PUSH_PAUSE_BEFORE_RENAME'


def is_complete_version(folder: Path) -> bool:
    """A SavedModel a model server can load: saved_model.pb (the Pusher copies it last) and
    variables/."""
    return (folder / 'saved_model.pb').is_file() and (folder / 'variables').is_dir()


def incomplete_versions(serving_dir: str) -> List[Path]:
    """The staging folders and the version folders without a complete SavedModel."""
    root = Path(serving_dir)
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir()
        and (p.name.startswith(STAGING_PREFIX) or (p.name.isdigit() and not is_complete_version(p)))
    )


def sweep(serving_dir: str) -> List[str]:
    """Removes the incomplete versions of `serving_dir`: call it when no push can be under way
    (holding the output folder's run lock). Returns the paths removed."""
    removed = []
    for path in incomplete_versions(serving_dir):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed
