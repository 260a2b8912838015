# Blindspot: `make run` runs the default pipeline, `make test` the test suite.
# Both create .venv with Python 3.10 and install the pinned working set once;
# later runs skip the install while requirements.lock and pyproject.toml are unchanged.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

# Python 3.10: $(PYTHON) if given, else python3.10 on PATH, else pyenv's newest 3.10.
define find_python310
for c in "$(PYTHON)" python3.10 \
    "$$(ls -d $$(pyenv root 2>/dev/null)/versions/3.10.* 2>/dev/null | sort -V | tail -1)/bin/python" \
    "$$HOME/.pyenv/versions/3.10.13/bin/python"; do \
  [ -n "$$c" ] || continue; \
  v=$$("$$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue; \
  [ "$$v" = "3.10" ] && { command -v "$$c"; exit 0; }; \
done; exit 1
endef

.PHONY: run test test-foreign test-install soak lint format bench bench-findings bench-regression bench-passes bench-preflight bench-pipeline bench-corpus kubeflow image notebook notebook-classic clean-venv

$(STAMP): requirements.lock pyproject.toml setup.py
	@py=$$($(find_python310)) || { echo "error: Python 3.10 not found (TFX 1.16 needs 3.9-3.10). Install it (e.g. 'pyenv install 3.10.13') or pass PYTHON=/path/to/python3.10." >&2; exit 1; }; \
	echo "Using $$py"; \
	if [ ! -x $(PY) ] || [ "$$($(PY) -c 'import sys; print(sys.version_info[:2] == (3, 10))' 2>/dev/null)" != True ]; then \
	  rm -rf $(VENV) && "$$py" -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade 'pip==26.3'
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@out=$$($(VENV)/bin/jupyter nbclassic-extension enable --sys-prefix \
	  tensorflow_model_analysis/extension 2>&1) || { echo "$$out" >&2; exit 1; }
	$(PY) -c 'import tfx_bsl.beam, tensorflow_model_analysis, blindspot, blindspot.pipelines'
	touch $(STAMP)

run: $(STAMP)
	$(PY) local_runner.py $(ARGS)

# One style for the whole tree (ruff, configured in pyproject.toml); a lint failure fails `make test`.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check --diff .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Two pytest-xdist workers: most of a pipeline run is single-threaded start-up and Beam
# overhead, so two runs at once use this 2-core machine better (TEST_WORKERS=0: one process).
TEST_WORKERS ?= 2
# The full runs of pipelines the project did not write (TFX's penguin example, the stock taxi
# template, minutes each: `make test-foreign`) and the clean-venv install (`make test-install`)
# are left out; their quick checks (both DAGs built and compiled with the user code) are in.
test: lint
	$(PY) -m pytest tests -m 'not soak and not foreign and not install' $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup) $(ARGS)

# ErrorAnalysis added to TFX's own penguin example and to the stock TFX taxi template (README,
# "Add ErrorAnalysis to your pipeline"), each run to a report in its own process.
test-foreign: $(STAMP)
	$(PY) -m pytest tests/test_foreign_pipelines.py -m foreign $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS)) $(ARGS)

# A fresh venv with only `pip install .` (no lock: PyPI resolves TFX 1.16's set, GBs), then
# `from blindspot import ErrorAnalysis`; prints the install time.
test-install: $(STAMP)
	$(PY) -m pytest tests/test_packaging.py -m install -s $(ARGS)

# The slow reliability cases (tests/test_reliability.py, marked soak): a full disk on a small
# tmpfs (needs root to mount; skipped otherwise) and Ctrl-C with multi-process Beam workers.
soak: $(STAMP)
	$(PY) -m pytest tests/test_reliability.py -m soak -p no:xdist $(ARGS)

# Planted failures and null data through the real Beam path, beside the sliceline package; then
# 1M, 10M and 30M rows, in-process and with two Beam worker processes (time, peak memory).
bench-findings: $(STAMP)
	$(PY) bench/findings.py $(ARGS)

# The same for a regression model: a biased region, a noisier range, null data; sliceline on the
# same absolute errors; time and memory beside classification at the largest size.
bench-regression: $(STAMP)
	$(PY) bench/regression.py $(ARGS)

# Slice discovery's passes one by one on 1M x 30 generated rows: CPU, shuffle, memory per batch
# (the measurements behind docs/cost.md).
bench-passes: $(STAMP)
	$(PY) bench/passes.py $(ARGS)

bench-preflight: $(STAMP)
	$(PY) bench/preflight.py $(ARGS)

# Blindspot's taxi pipeline beside the stock TFX taxi template (alternating, 2 rounds), then the
# csv pipeline on generated 40k x 27 and 400k x 8 CSVs: seconds per component from ML Metadata.
bench-pipeline: $(STAMP)
	$(PY) bench/pipeline.py $(ARGS)

# The csv pipeline on every labelled table shipped in an installed package (scikit-learn,
# palmerpenguins, vega_datasets) and on generated edge cases: accuracy, held findings, and
# whether each report agrees with itself; fails when a run crashes or a report breaks a rule.
bench-corpus: $(STAMP)
	$(PY) bench/corpus.py $(ARGS)

bench: bench-findings bench-regression bench-passes bench-preflight bench-pipeline bench-corpus

# The review notebook in JupyterLab (docs/review.md): Blindspot's own views, no network needed
# (no news or update checks either). notebook-classic: Jupyter Notebook classic with TFMA's
# optional widgets on (they draw only there, their charts with internet access).
notebook: $(STAMP)
	$(VENV)/bin/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) \
	  --LabApp.news_url= --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	  $(ARGS) notebooks/review.ipynb

notebook-classic: $(STAMP)
	BLINDSPOT_TFMA_WIDGETS=1 $(VENV)/bin/jupyter nbclassic $$([ "$$(id -u)" = 0 ] && echo --allow-root) \
	  --NotebookApp.show_banner=False \
	  --NotebookApp.default_url=/nbclassic/notebooks/notebooks/review.ipynb $(ARGS)

# Without ARGS it compiles kubeflow/config.example.yaml as it is, and refuses its placeholders.
kubeflow: $(STAMP)
	$(PY) -m blindspot.kubeflow.runner $(or $(ARGS),--config kubeflow/config.example.yaml)

# The Kubeflow image (kubeflow/Dockerfile), tagged IMAGE (default: blindspot:<commit>) and
# blindspot:local, the tag tests/test_kubeflow_local_run.py runs the ErrorAnalysis step in.
# BASE_IMAGE: a Debian bookworm image with Python 3.10 (default: the Dockerfile's, from Docker
# Hub; without it, `sudo kubeflow/base_image.sh` makes blindspot-base:bookworm-py3.10 from
# Debian's archive); DOCKER_BUILD_ARGS: more `docker build` options, e.g. --network host.
IMAGE ?= blindspot:$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
BASE_IMAGE ?=
DOCKER_BUILD_ARGS ?=
image:
	@command -v docker >/dev/null || { echo "error: docker not found: 'make image' needs Docker (e.g. apt-get install docker.io)" >&2; exit 1; }
	docker build -f kubeflow/Dockerfile $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
	    -t $(IMAGE) -t blindspot:local $(DOCKER_BUILD_ARGS) .

clean-venv:
	rm -rf $(VENV)
