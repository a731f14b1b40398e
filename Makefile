# `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements

.PHONY: run test lint bench browser messages clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# Debian's Chromium drives the end-to-end browser test; Noto CJK draws its Japanese
# (without a CJK font Chromium shows boxes).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; }
	@fc-list :lang=ja 2>/dev/null | grep -q . || { apt-get update -q && apt-get install -y -q fonts-noto-cjk; }

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py

# Three stages, so that a failure says which kind it is: the fast unit and page tests,
# the model-quality checks (real trainings, marked slow), then the real browser. The unit
# stage runs on two workers (pytest-xdist): much of its time is one Python thread; the
# model-quality trainings too (one torch thread each), but for a memory-limit check that
# failed beside another worker; the browser tests (a server, Chromium and a training each)
# run one at a time.
TEST_WORKERS ?= 2
test: $(STAMP) browser
	$(PY) -m ruff check soartlab tests bench app.py pages
	@echo "== unit and page tests"
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow and not browser"
	@echo "== model-quality tests (slow)"
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "slow and not browser and not alone" --durations=5
	$(PY) -m pytest -q -m "slow and alone"
	@echo "== browser tests (headless Chromium)"
	$(PY) -m pytest -q -m browser --durations=5

# Extract every interface message (app.py, pages/, soartlab/) into the template and bring
# soartlab/locale/ja/LC_MESSAGES/soartlab.po up to it; then translate its empty entries.
messages: $(STAMP)
	$(PY) -m soartlab.ui.catalogue

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
