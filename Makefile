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

.PHONY: setup system-packages demo ingest preprocess test test-slow test-all lint bench clean

setup: system-packages $(STAMP)

# ffmpeg (with ffprobe) and espeak-ng come from Debian; installed only when missing (needs root).
system-packages:
	@if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null || ! command -v espeak-ng >/dev/null; then \
		echo "installing ffmpeg and espeak-ng from Debian"; \
		if [ "$$(id -u)" != 0 ]; then echo "need root (or sudo) to apt-get install ffmpeg espeak-ng" >&2; exit 1; fi; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg espeak-ng; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON_SYS) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/dvc repro

ingest: setup
	$(BIN)/dvc repro ingest

preprocess: setup
	$(BIN)/dvc repro preprocess

test: setup
	$(BIN)/pytest -q

test-slow: setup
	$(BIN)/pytest -q -m slow

test-all: setup
	$(BIN)/pytest -q -m "slow or not slow"

lint: setup
	$(BIN)/ruff check flows tasks models tests benchmarks

clean:
	rm -rf data/raw data/shards artifacts dvclive reports renders .cache
