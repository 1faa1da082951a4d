# Everything goes through the project's own virtualenv; targets that need it depend on it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-unit test-kafka lint scan-sample demo kafka-up kafka-down bench bench-stream bench-adversarial fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## The whole suite; tests that need Kafka start the broker themselves (deploy/kafka/kafka.sh).
test: $(STAMP)
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not kafka"

test-kafka: $(STAMP)
	$(BIN)/python -m pytest -q -m kafka

lint: $(STAMP)
	$(BIN)/ruff check detector tools tests bench
	$(BIN)/ruff format --check detector tools tests bench
	$(BIN)/mypy

## Scan the bundled sample corpus that mixes all eight sources.
scan-sample: $(STAMP)
	$(BIN)/detector scan samples/corpus.ndjson.gz

kafka-up:
	deploy/kafka/kafka.sh up

kafka-down:
	deploy/kafka/kafka.sh down

demo: $(STAMP)
	$(BIN)/python -m tools.demo

## Benchmarks print figures (they are scripts, not tests). The stream ones need `make kafka-up`.
bench: $(STAMP)
	$(BIN)/python -m bench.scan_throughput

bench-stream: $(STAMP)
	$(BIN)/python -m bench.stream_throughput
	$(BIN)/python -m bench.stream_latency

## The long fuzz run (not part of `make test`, which replays its regression corpus): 1,000,000 hostile
## records through the core's invariants on both cores; new findings are written to tests/fuzz/corpus/.
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --inputs 1000000 --seed 1 --jobs 2 --sweep 1

## The worst records an attacker can write, timed per record (the per-record CPU bound).
bench-adversarial: $(STAMP)
	$(BIN)/python -m bench.adversarial

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
