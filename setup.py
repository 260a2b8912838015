"""One import name, `blindspot`, over the repository's folders (metadata: pyproject.toml).

    components/ -> blindspot            the ErrorAnalysis component (and the other components)
    pipelines/  -> blindspot.pipelines  Blindspot's own pipelines and runners' helpers
    review/     -> blindspot.review     reviewing runs from ML Metadata
    kubeflow/   -> blindspot.kubeflow   the Kubeflow compiler

A package-dir mapping, so the folders stay where they are. The subpackages are found here, at
build time, so a new folder with an __init__.py is packaged without listing it anywhere.
"""

from setuptools import find_packages, setup

FOLDERS = {
    'blindspot': 'components',
    'blindspot.pipelines': 'pipelines',
    'blindspot.review': 'review',
    'blindspot.kubeflow': 'kubeflow',
}

packages = []
for name, folder in FOLDERS.items():
    packages += [name] + [f'{name}.{sub}' for sub in find_packages(folder)]

setup(packages=packages, package_dir=FOLDERS)
