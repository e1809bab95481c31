# Two entry points: `make run` (the app) and `make test` (the whole suite).
# Both bootstrap a project-local virtualenv with PyTorch 2.13.0 (the libtorch that
# tch 0.26 links against) the first time, then build with LIBTORCH_USE_PYTORCH=1.

SHELL := /bin/bash
VENV := $(CURDIR)/.venv
TORCH_VERSION := 2.13.0
TORCH_STAMP := $(VENV)/.torch-$(TORCH_VERSION)
PYTHON ?= python3
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: run test build lint bench bench-fea bench-models bench-ui study torch deb deb-cuda label-studio

# The desktop app on the embedded phantom and the shipped VAE.
run: build
	./target/release/sula

build: $(TORCH_STAMP)
	cargo build --release

test: $(TORCH_STAMP)
	cargo test --all-targets

lint: $(TORCH_STAMP)
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	python3 scripts/check-doc-links.py

bench: bench-fea bench-models bench-ui

# UI frame CPU time with 10,000 latent points, and while the worker trains.
bench-ui: build
	./target/release/sula bench ui

# FEA benchmark side by side with scikit-fem (installed into the same virtualenv).
bench-fea: build
	$(VENV)/bin/python -c "import skfem" 2>/dev/null || $(VENV)/bin/pip install -q scikit-fem==12.0.2 scipy
	$(VENV)/bin/python bench/fea_reference.py --sula ./target/release/sula

# Training throughput side by side with the same architectures in PyTorch eager.
bench-models: build
	$(VENV)/bin/python bench/models_reference.py --sula ./target/release/sula --rounds 5

# A real round trip through Label Studio, run locally (scripts/label_studio_roundtrip.py):
# a 4-frame batch annotated through its HTTP API, the JSON and COCO exports imported by
# sula. Label Studio lives in its own virtualenv .venv-ls, made the first time (minutes).
label-studio: build
	python3 scripts/label_studio_roundtrip.py --sula ./target/release/sula

# The CPU default study (docs/journal/study.md): each mode's chosen setting against random,
# core-set and TTA uncertainty, 5 repeats, into $(OUT)/si and $(OUT)/snn; prints the
# wall time of both together. Random, core-set and TTA do not depend on the mode, so SNN
# takes them from the SI folder and runs only its own arm.
OUT ?= results
study: build
	@start=$$(date +%s); \
	./target/release/sula experiment --mode si --out $(OUT)/si && \
	./target/release/sula experiment --mode snn --merge $(OUT)/si --out $(OUT)/snn && \
	echo "both modes in $$(( $$(date +%s) - start )) s"

# Debian packages with libtorch bundled (see packaging/README.md); the CPU one is
# installed into a scratch root and run without the virtualenv.
deb: $(TORCH_STAMP)
	packaging/build-deb.sh cpu
	packaging/check-deb.sh dist/sula_$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)_amd64.deb

deb-cuda: $(TORCH_STAMP)
	packaging/build-deb.sh cuda

torch: $(TORCH_STAMP)

$(TORCH_STAMP):
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q torch==$(TORCH_VERSION)
	touch $@
