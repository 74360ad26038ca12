# Two entry points: `make demo` and `make test`. Both create .venv (Python 3.10, required by Lava) when it is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean-venv

$(VENV)/bin/python:
	@py=""; \
	for c in "$$(pyenv root 2>/dev/null)"/versions/3.10*/bin/python3.10 "$$HOME"/.pyenv/versions/3.10*/bin/python3.10 "$$(command -v python3.10)"; do \
	  if [ -x "$$c" ]; then py="$$c"; break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "error: Python 3.10 not found; install it (e.g. 'pyenv install 3.10') or put python3.10 on PATH" >&2; exit 1; fi; \
	echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV)

$(STAMP): $(VENV)/bin/python pyproject.toml constraints.txt
	$(PY) -m pip install -q --upgrade "pip<25"
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/iemf-neuro train-and-convert --config avdigits-mlp --out runs/demo --qat-epochs 6

test: $(STAMP)
	$(PY) -m pytest -q -ra

clean-venv:
	rm -rf $(VENV)
