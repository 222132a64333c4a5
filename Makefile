# Everything installs into .venv; torch goes first so that the CPU wheel is used
# (an unpinned torch would pull a multi-GB CUDA build).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SHARED  ?= ../shared/data
TRIAGE  := data/triage/CURRENT
SEMEVAL_MODEL := data/models/minilm-semeval2016
HOST    ?= 127.0.0.1
PORT    ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: test-soak install system-deps triage-model semeval-model serve test test-fast lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the slow tests need: headless Chromium + its driver (the widget's browser
# test), PostgreSQL (the store suite and the replica test start their own server) and Redis
# (the shared rate-limit test starts its own)
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  && command -v redis-server >/dev/null \
	  && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
	    chromium chromium-driver postgresql redis-server; }

# the default triage classifier: multilingual USE + logistic regression, trained on
# BANKING77 + CLINC150 (mapped through their routes.csv), the bundled seed and multilingual
# examples, and SUMO Firefox weeks 58-61 as community questions (62-63 are kept for dev)
FORUM_TRAIN := $(foreach v,58 59 60 61,$(SHARED)/sumo_firefox/firefox-$(v)-week-1-id-created-title-content-tags-product-topic.csv)
# retrained when the bundled examples change (make serve after a pull that edits them)
TRIAGE_EXAMPLES := $(wildcard triage/data/*.csv)
$(TRIAGE): $(TRIAGE_EXAMPLES) | $(STAMP)
	$(BIN)/unsource triage train --data $(SHARED)/banking77 --data $(SHARED)/clinc150 \
	  $(foreach f,$(FORUM_TRAIN),--forum $(f))

triage-model: $(TRIAGE)

# MiniLM fine-tuned on SemEval-2016 train (2 epochs, seed 0; a few minutes on 2 cores).
# Use it with UNSOURCE_MODEL=$(SEMEVAL_MODEL) UNSOURCE_FUSION=dense (docs/evaluation.md).
$(SEMEVAL_MODEL)/config.json: | $(STAMP)
	$(BIN)/unsource finetune --data $(SHARED)/semeval2016 --split train --out $(SEMEVAL_MODEL)

semeval-model: $(SEMEVAL_MODEL)/config.json

# Keyless dev mode on loopback (the server says so when it starts); AUTH=keys serves with
# the keys in UNSOURCE_API_KEYS instead.
AUTH ?= dev
serve: $(STAMP) $(TRIAGE)
	$(BIN)/unsource demo load --if-empty
	$(BIN)/unsource serve --host $(HOST) --port $(PORT) $(if $(filter dev,$(AUTH)),--dev)

test: $(STAMP) system-deps
	$(BIN)/pytest -q --durations=30

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -q

# the long runs: the crash harness over 20 seeds x 10,000 threads (about 12 minutes; make
# test runs it over 4 seeds x 3,000)
test-soak: $(STAMP) system-deps
	UNSOURCE_CRASH_SEEDS=0:20 UNSOURCE_CRASH_THREADS=10000 \
		$(BIN)/pytest -q tests/service/test_slow_crash.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# encoders, side by side with txtai and sentence-transformers + faiss (two jobs, three
# repeats, each run in its own process: about 40 minutes at 10k threads), /suggest over HTTP
# at 10k/100k/1M threads (about 20 minutes on 2 cores; needs ~6 GB of scratch disk)
bench: $(STAMP) $(TRIAGE)
	$(BIN)/python -m eval.bench --data $(SHARED)/semeval2016 --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
