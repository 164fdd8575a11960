# Two entry points for a newcomer (see README):
#   make demo   install into .venv and send the example incident to the sandbox outbox
#   make test   install the dev extras into .venv and run lint + the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint format bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/outagecomms send examples/incident-investigating.yaml --sandbox --yes
	@echo "Now see it on the status page: $(BIN)/outagecomms serve --sandbox"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

# The benchmarks of bench/ (not part of `make test`); numbers and machine in bench/RESULTS.md.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench all

# The README's pictures of the status page and the banner (docs/*.png), in Debian's Chromium.
screenshots: $(VENV)/.installed-dev
	$(BIN)/python docs/screenshots.py
	$(BIN)/python docs/report_screenshot.py

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .outagecomms .pytest_cache build dist
