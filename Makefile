# One-command set-up and runs. `make demo` builds everything on the offline demo corpus;
# `make test` runs the default test suite. Both start with `make setup`.
SHELL := /bin/bash
VENV ?= .venv
PYTHON_SYS ?= $(shell command -v python3.11 || command -v python3)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba

.PHONY: setup system-packages demo base base-lstm ingest preprocess lstm-grid lstm-grid-real test test-slow test-all lint clean

setup: system-packages $(STAMP)

# ffmpeg (with ffprobe) and espeak-ng come from Debian; installed only when missing (needs root).
# chromium: the headless browser the web app's test drives (Playwright's own download needs the internet).
system-packages:
	@if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null || ! command -v espeak-ng >/dev/null \
		|| ! command -v chromium >/dev/null; then \
		echo "installing ffmpeg, espeak-ng and chromium from Debian"; \
		if [ "$$(id -u)" != 0 ]; then echo "need root (or sudo) to apt-get install ffmpeg espeak-ng chromium" >&2; exit 1; fi; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg espeak-ng chromium; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON_SYS) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/dvc repro

# The shipped real-faces base (models/base/: lstm.pt, cgan.pt, MODEL_CARD.md) rebuilt from the real fixtures
# beside the checkout (../shared/fixtures/real or $REENACT_FIXTURES). Its DVC stage is frozen, so that
# `dvc repro` (make demo) never rebuilds it on a machine without the fixtures.
# dvc.yaml is put back as it was afterwards: (un)freeze would rewrite its layout, and restoring it freezes it again.
base: setup
	mkdir -p .dvc/tmp && cp dvc.yaml .dvc/tmp/dvc.yaml.frozen
	PATH=$(CURDIR)/$(BIN):$$PATH; dvc unfreeze base && dvc repro base; status=$$?; \
		cp .dvc/tmp/dvc.yaml.frozen dvc.yaml; exit $$status

# The shipped LSTM alone retrained as the base build trains it, the generator kept (minutes, not an hour);
# dvc.lock then records the new models/base/lstm.pt and MODEL_CARD.md.
base-lstm: setup
	$(BIN)/python -m flows.corpus base-lstm && PATH=$(CURDIR)/$(BIN):$$PATH dvc commit -f base

ingest: setup
	$(BIN)/dvc repro ingest

preprocess: setup
	$(BIN)/dvc repro preprocess

# The paper's Tables 1 and 2 as a DVC experiment grid: {uni, bi}directional x {1, 2} layers x
# dropout {0, 0.3, 0.5}, queued, run one at a time, then shown side by side, with the held-out videos'
# figures after a render's alignment (held_out_*: people never heard when split.by is speaker).
# lstm-grid-real: the same grid on real Obama, trained on the first 80 % of his weekly address and measured on
# the rest, as the paper did (python -m evals.speech --obama: the same train_lstm stage, a markdown table;
# needs the real fixtures, tasks/config/paths.py: REAL_FIXTURES).
lstm-grid: setup
	PATH=$(CURDIR)/$(BIN):$$PATH; \
	dvc exp run --queue -S 'lstm.bidirectional=false,true' -S 'lstm.layers=1,2' -S 'lstm.dropout=0,0.3,0.5' train_lstm && \
	dvc queue start -j 1 && \
	while dvc queue status | grep -qE 'Queued|Running'; do sleep 5; done; \
	dvc exp show --no-pager --md --drop '.*' \
		--keep 'Experiment|lstm.bidirectional|lstm.layers|lstm.dropout|best_val_loss|baseline_val_loss|dvclive/lstm/metrics.json:mouth_open_r|(dvclive/lstm/metrics.json:)?held_out_(mouth_open_r|lmd_px|sync_offset_frames|loudness_mouth_open_r)$$' \
		--sort-by best_val_loss --sort-order asc

lstm-grid-real: setup
	$(BIN)/python -m evals.speech --obama

# Two test files at a time (pytest-xdist; a file's tests stay together, sharing its fixtures): on 2 cores the
# suite waits on ffmpeg, DVC, Prefect and subprocesses as much as it computes. TEST_WORKERS=0: one at a time.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

test-slow: setup
	$(BIN)/pytest -q -m slow

test-all: setup
	$(BIN)/pytest -q -m "slow or not slow"

lint: setup
	$(BIN)/ruff check flows tasks models tests benchmarks evals

clean:
	rm -rf data/raw data/shards artifacts dvclive reports renders .cache
