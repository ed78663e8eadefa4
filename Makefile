# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages: Fashion-MNIST for image_gen, EGL/Mesa for headless robosuite cameras.
SYSTEM_PACKAGES := dataset-fashion-mnist libegl1 libegl-mesa0
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo demo-toy test test-slow lint install system-deps clean imagegen-smoke imagegen-ddp-smoke \
	gpu-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,robomimic,kitchen,convnext]"
	touch $(STAMP)

install: $(STAMP)

# Best effort: installs the Debian packages when run as root with apt; tests that need them skip otherwise.
system-deps:
	@if [ ! -f $(FASHION_MNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null \
		|| echo "warning: could not install $(SYSTEM_PACKAGES); dependent tests will skip"; \
	fi

# Push-T end to end: collect -> train Drifting and Diffusion -> evaluate on the 50 test seeds -> table.
demo: $(STAMP)
	$(VENV)/bin/drifting-demo

# The paper's 2-D experiments (Fig. 3 starts), about a minute of CPU.
demo-toy: $(STAMP)
	$(VENV)/bin/drifting-toy

test: $(STAMP) system-deps
	$(PY) -m ruff check .
	$(PY) -m pytest

test-slow: $(STAMP) system-deps
	$(PY) -m pytest -m slow

# image_gen chain at toy size: MAE pre-training -> generator -> evaluation JSON (last line). Running it
# again trains nothing: a finished run resumes as a no-op (resume=true); delete runs/<run_name> to retrain.
imagegen-smoke: $(STAMP) system-deps
	$(VENV)/bin/image-gen-train-mae --config-name mae_smoke
	$(VENV)/bin/image-gen-train --config-name smoke
	test -f runs/evaluator_smoke/evaluator.safetensors || $(VENV)/bin/image-gen-train-evaluator \
		run_name=evaluator_smoke epochs=1 limit_per_class=500
	$(VENV)/bin/image-gen-eval --checkpoint runs/imagegen_smoke/model.safetensors \
		--evaluator runs/evaluator_smoke/evaluator.safetensors --n-samples 500 --alpha 1.5

# The same chain with the MAE and the generator each trained by two CPU processes (torchrun, gloo).
imagegen-ddp-smoke: $(STAMP) system-deps
	OMP_NUM_THREADS=1 $(VENV)/bin/torchrun --standalone --nproc_per_node 2 -m image_gen.train \
		--config-name mae_smoke run_name=mae_ddp_smoke
	OMP_NUM_THREADS=1 $(VENV)/bin/torchrun --standalone --nproc_per_node 2 -m image_gen.train \
		--config-name smoke run_name=imagegen_ddp_smoke encoder_path=runs/mae_ddp_smoke/mae.safetensors
	test -f runs/evaluator_smoke/evaluator.safetensors || $(VENV)/bin/image-gen-train-evaluator \
		run_name=evaluator_smoke epochs=1 limit_per_class=500
	$(VENV)/bin/image-gen-eval --checkpoint runs/imagegen_ddp_smoke/model.safetensors \
		--evaluator runs/evaluator_smoke/evaluator.safetensors --n-samples 500 --alpha 1.5

# One GPU, sized for <= 10 minutes (not yet timed on a GPU): gpu tests, fused field vs memory floor,
# latency, training and image_gen throughput
# -> runs/gpu_check_<device>/gpu_check.{json,md} (docs/gpu.md). DEVICE=cpu: the same at a tiny size (CI).
DEVICE ?= cuda
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py --device $(DEVICE)

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
