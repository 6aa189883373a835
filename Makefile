# Two commands set everything up: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export GRADIO_ANALYTICS_ENABLED := False
export ANONYMIZED_TELEMETRY := False

.PHONY: install run serve ingest test test-fast lint eval eval-bbc eval-invented fit fit-deps bench bench-archive bench-snippets bench-scale screenshots browser lock clean

install: $(STAMP)  ## create .venv and install the pinned dependencies (idempotent)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

ingest: install  ## index seeds/ (only new or changed files are embedded)
	$(BIN)/rag ingest

run: ingest  ## install, index seeds/, start the chat at http://127.0.0.1:7860
	$(BIN)/rag serve

serve: run

browser:  ## Debian's chromium for the browser tests (never `playwright install`)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install -y chromium" >&2; exit 1; fi; }

test: install browser  ## install what tests need and run the whole suite
	$(BIN)/ruff check rag ui tests bench
	$(BIN)/python -m pytest

test-fast: install  ## the suite without the browser and eval-gate tests
	$(BIN)/python -m pytest -m "not browser and not slow"

lint: install
	$(BIN)/ruff check rag ui tests bench
	$(BIN)/ruff format --check rag ui tests bench

eval: install  ## run the eval set on seeds/; writes eval/out/report.json, report.md, *.png
	$(BIN)/rag eval --corpus seeds --out eval/out

BBC ?= ../shared/corpora/bbc
eval-bbc: install  ## the BBC questions (fitting and held-out halves) over the whole archive
	$(BIN)/rag eval --corpus $(BBC) --set eval/bbc/fit.jsonl --set eval/bbc/heldout.jsonl \
	  --index .fit/bbc-index --out eval/out/bbc --no-baseline

eval-invented: install  ## 48 questions over 12 invented news pages (.txt, .html, .md): text nobody fitted on
	$(BIN)/rag eval --corpus eval/invented/articles --set eval/invented/questions.jsonl \
	  --out eval/out/invented --no-baseline

fit: install fit-deps  ## refit the question adapter, the reader and the scorer (needs the BBC archive; ~75 min)
	$(BIN)/python -m rag.fit_query --bbc-corpus $(BBC) --bbc-index .fit/bbc-index
	$(BIN)/python -m rag.fit_reader --bbc-corpus $(BBC) --bbc-index .fit/bbc-index
	$(BIN)/python -m rag.fit --bbc-corpus $(BBC) --bbc-index .fit/bbc-index

# torch only fits the question adapter and the reader; nothing at run time needs it. 2.13.0 is a CPU build
# on machines that keep its wheel at hand; elsewhere install one first:
#   .venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fit-deps: install
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0

bench: install browser  ## benchmarks: engine, HTTP API, the BBC archive, its snippets, 20k/100k articles
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_api.py
	$(BIN)/python bench/archive.py --corpus $(BBC)
	$(BIN)/python bench/snippets.py --archive $(BBC)
	$(BIN)/python bench/scale.py

bench-archive: install  ## ingest and ask the BBC archive (add SLICE=300 for a quick run)
	$(BIN)/python bench/archive.py --corpus $(BBC) $(if $(SLICE),--slice $(SLICE))

bench-snippets: install  ## answers over 1,000 noisy snippets made from the BBC archive
	$(BIN)/python bench/snippets.py --archive $(BBC)

bench-scale: install  ## start-up, latency and memory at 2k, 20k and 100k articles
	$(BIN)/python bench/scale.py

screenshots: install browser  ## PNGs of the chat, the article view and the widget into docs/
	$(BIN)/python -m ui.screenshots --out docs

lock:  ## re-pin dependencies after editing pyproject.toml
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml requirements-build.in --extra test --extra fit --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf $(VENV) .rag-index .fit .pytest_cache eval/out bench/out
