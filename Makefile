# Everything goes through the project's own virtualenv; targets that need it depend on it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lock install test test-unit test-kafka lint scan-sample demo kafka-up kafka-down bench bench-stream bench-memory bench-report bench-adversarial faults fuzz clean k8s-tools

install: $(STAMP)

# Dependencies come from the lock file, checked against its hashes; the project itself is installed on top.
$(STAMP): pyproject.toml requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

## Re-resolve requirements.lock and requirements-dev.lock from pyproject.toml (needs PyPI).
lock:
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install -q pip-tools
	$(VENV)-lock/bin/pip-compile -q --generate-hashes --strip-extras --allow-unsafe --no-header --no-emit-find-links -o requirements.lock pyproject.toml
	$(VENV)-lock/bin/pip-compile -q --generate-hashes --strip-extras --allow-unsafe --no-header --no-emit-find-links --extra dev -o requirements-dev.lock pyproject.toml
	rm -rf $(VENV)-lock
	sed -i '1i # Pinned runtime dependencies of the detector (the container installs from this), with hashes.\n# Regenerate with `make lock` after changing pyproject.toml'"'"'s dependencies.\n' requirements.lock
	sed -i '1i # Pinned runtime and development dependencies (make install and CI install from this), with hashes.\n# Regenerate with `make lock` after changing pyproject.toml'"'"'s dependencies.\n' requirements-dev.lock

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
	$(BIN)/mypy bench/_kafka.py bench/stream_throughput.py bench/stream_latency.py bench/stream_memory.py bench/plain_faust.py bench/alert_storm.py bench/report.py

## Scan the bundled sample corpus that mixes all eight sources.
scan-sample: $(STAMP)
	$(BIN)/detector scan samples/corpus.ndjson.gz

## Pinned helm, kubeconform, offline Kubernetes/CRD JSON schemas and checkov under .cache/k8s-tools, for
## tests/test_helm.py (needs go; .ci/run calls this).
k8s-tools: $(STAMP)
	K8S_PYTHON=$(BIN)/python tools/k8s-tools.sh

kafka-up:
	deploy/kafka/kafka.sh up

kafka-down:
	deploy/kafka/kafka.sh down

demo: $(STAMP)
	$(BIN)/python -m tools.demo

## Benchmarks print figures (they are scripts, not tests). The stream ones need `make kafka-up`.
bench: $(STAMP)
	$(BIN)/python -m bench.scan_throughput

## The stream ones read BENCH_BOOTSTRAP (default 127.0.0.1:9092) and write bench/results/stream_*.json and
## alert_storm.json.
bench-stream: $(STAMP)
	$(BIN)/python -m bench.stream_throughput
	$(BIN)/python -m bench.stream_latency
	$(BIN)/python -m bench.alert_storm

## Worker RSS over a 10-minute steady run at 50,000 records/s (MINUTES=1 for a short trial, RATE=20000 for
## a machine that cannot sustain 50,000/s).
bench-memory: $(STAMP)
	$(BIN)/python -m bench.stream_memory --minutes $(or $(MINUTES),10) --rate $(or $(RATE),50000)

## BENCHMARKS.md and the plots under bench/results/ from bench/results/*.json.
bench-report: $(STAMP)
	$(BIN)/python -m bench.report

## The long fuzz run (not part of `make test`, which replays its regression corpus): 1,000,000 hostile
## records through the core's invariants on both cores; new findings are written to tests/fuzz/corpus/.
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --inputs 1000000 --seed 1 --jobs 2 --sweep 1

## The worst records an attacker can write, timed per record (the per-record CPU bound).
bench-adversarial: $(STAMP)
	$(BIN)/python -m bench.adversarial

## Crash and restart: 200,000 records while the worker is SIGKILLed 5 times and the broker restarted once; zero
## alerts lost, every malformed record dead-lettered, the cap intact. Starts its own broker on 19292/19293.
faults: $(STAMP)
	$(BIN)/python -m bench.faults

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
