# Set-up is idempotent: .venv is created once and re-installed only when the requirements change.
# Python 3.10, 3.11 and 3.12 are supported: the first of these on PATH, or PYTHON=...
# (pyenv shims exist for versions that are not selected, so each candidate must actually run)
PYTHON ?= $(shell for p in python3.11 python3.12 python3.10; do $$p -c '' 2>/dev/null && { command -v $$p; break; }; done)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := data/synthetic
RUN_DIR := runs/quickstart

.PHONY: venv quickstart test smoke bench data clean-runs continual-data continual-pretrain continual-table

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" && command -v $(PYTHON) >/dev/null 2>&1 || { echo "need python3.11, python3.12 or python3.10 on PATH (or run: make PYTHON=/path/to/python ...)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' || { echo "$(PYTHON) is not Python 3.10-3.12"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

$(DATA)/train/sizes.json: | $(STAMP)
	$(PY) data_tools/make_synthetic.py image-text --out $(DATA)/train --num-samples 6144 --shard-size 512 --seed 0
$(DATA)/val/sizes.json: | $(STAMP)
	$(PY) data_tools/make_synthetic.py image-text --out $(DATA)/val --num-samples 1024 --shard-size 256 --seed 1

data: $(DATA)/train/sizes.json $(DATA)/val/sizes.json

# Main job: pretrain a tiny CLIP on synthetic shards on CPU, then print the final evaluation.
quickstart: $(STAMP) data
	$(VENV)/bin/mmpretrain fit -c configs/trainer/cpu.yaml -c configs/exp/clip/quickstart.yaml \
		--trainer.default_root_dir $(RUN_DIR)
	$(VENV)/bin/mmpretrain validate -c configs/trainer/cpu.yaml -c configs/exp/clip/quickstart.yaml \
		--trainer.default_root_dir $(RUN_DIR) --ckpt_path $(RUN_DIR)/checkpoints/last.ckpt

# Continual pretraining study: synthetic task stream, the pretrained starting model, then the
# methods of configs/sweeps/continual_methods.yaml at equal compute and their A_KA/A_ZS/GM table.
CONTINUAL_DATA := data/continual
CONTINUAL_START := runs/continual/pretrain/checkpoints/last.ckpt
CONTINUAL_SWEEP := runs/sweeps/continual_methods
CONTINUAL_METHODS := finetune_cosine rsqrt_meta ema_merge ctp lora zs_merge ft_merge ewc ewc_1000 no_replay

$(CONTINUAL_DATA)/stream.json: | $(STAMP)
	$(PY) data_tools/make_synthetic.py continual --out $(CONTINUAL_DATA)

continual-data: $(CONTINUAL_DATA)/stream.json

$(CONTINUAL_START): $(CONTINUAL_DATA)/stream.json
	$(VENV)/bin/mmpretrain fit -c configs/trainer/cpu.yaml -c configs/exp/continual/pretrain.yaml

continual-pretrain: $(CONTINUAL_START)

continual-table: $(CONTINUAL_START)
	$(VENV)/bin/mmpretrain sweep configs/sweeps/continual_methods.yaml
	$(PY) -m mmpretrain.eval.continual $(addprefix $(CONTINUAL_SWEEP)/,$(CONTINUAL_METHODS)) \
		--out $(CONTINUAL_SWEEP)/table.md

# Tests (CPU). pytest exits 5 when it collects nothing: treat that as a failure, not a pass.
test: $(STAMP)
	@$(PY) -m pytest -q --durations=25 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

# The quick subset .ci/run repeats on the other Python versions (files listed in .ci/smoke_tests.txt).
smoke: $(STAMP)
	@$(PY) -m pytest -q -p no:cacheprovider $$(grep -v '^#' .ci/smoke_tests.txt)

bench: $(STAMP)
	$(PY) benchmarks/run.py --out benchmarks/results

clean-runs:
	rm -rf runs
