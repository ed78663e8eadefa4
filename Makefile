# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages: Fashion-MNIST for image_gen, EGL/Mesa for headless robosuite cameras.
SYSTEM_PACKAGES := dataset-fashion-mnist libegl1 libegl-mesa0
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test test-slow lint install system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,robomimic]"
	touch $(STAMP)

install: $(STAMP)

# Best effort: installs the Debian packages when run as root with apt; tests that need them skip otherwise.
system-deps:
	@if [ ! -f $(FASHION_MNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null \
		|| echo "warning: could not install $(SYSTEM_PACKAGES); dependent tests will skip"; \
	fi

demo: $(STAMP)
	$(VENV)/bin/drifting-toy

test: $(STAMP) system-deps
	$(PY) -m ruff check .
	$(PY) -m pytest

test-slow: $(STAMP) system-deps
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
