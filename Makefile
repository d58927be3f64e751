# The one interface that people and CI both call. `make test` and `make run` work on a
# fresh machine: they create .venv when it is missing and install the locked versions.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(VENV)/bin
PY        := $(BIN)/python
STAMP     := $(VENV)/.installed
TOOLS     := .tools
SAM_VENV  := $(TOOLS)/sam
UV_VERSION := 0.13.9

export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

# Prefer Python 3.13 (the Lambda runtime); else the newest >= 3.11, with a warning.
PYTHON_BOOT := $(shell scripts/find-python.sh 2>/dev/null)

.PHONY: help venv lint typecheck template-check test test-big test-unit test-functional test-integration \
        run build build-check bench audit lock clean checkov iam-coverage

help:
	@echo "make run    - the whole system end to end on loopback (mls-sync demo)"
	@echo "make test   - lint, type checks, template checks and every test tier"
	@echo "make lint | typecheck | template-check | test-unit | test-functional | test-integration"
	@echo "make test-big - the 10,000-listing first sync (issue 14), 8 workers x 2,000 on one MLS token (issue 21) and 10,000 pushes for one connection (issue 17), not part of make test"
	@echo "make build  - sam build (arm64, no Docker) in its own tool environment"
	@echo "make build-check - build, then import every handler from the build output alone"
	@echo "make bench  - benchmarks (never part of make test)"
	@echo "make lock   - re-resolve requirements-dev.lock and the layer's requirements.txt"
	@echo "make audit  - pip-audit of the locked dependencies (says NOT RUN when offline)"
	@echo "make browser - headless Chromium for the report screenshot test (apt-get when possible)"
	@echo "make checkov - checkov on template.yaml, 0 failed (says NOT RUN when it cannot install)"
	@echo "make iam-coverage - every IAM grant used by the functional/integration tiers' calls"

$(STAMP): pyproject.toml requirements-dev.lock
	@test -n "$(PYTHON_BOOT)" || { echo "error: no Python >= 3.11 found" >&2; exit 2; }
	@echo "using $(PYTHON_BOOT) ($$($(PYTHON_BOOT) --version))"
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(BIN)/uv pip install --quiet --python $(PY) -r requirements-dev.lock
	@$(BIN)/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/core/mls_sync mls_sync_local functions tests bench

template-check: $(STAMP)
	$(PY) -m mls_sync_local.template_check template.yaml
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit -q -p no:cacheprovider --disable-socket --allow-unix-socket

# Each tier records the AWS calls its handlers make (tests/support/iam_recorder.py) for
# `make iam-coverage`; every call is checked against its function's policy as it is made.
IAM_USAGE := .iam-usage

test-functional: $(STAMP)
	MLS_SYNC_IAM_USAGE=$(IAM_USAGE)/functional.json $(BIN)/pytest tests/functional -q -p no:cacheprovider --durations=10

test-integration: $(STAMP) browser
	MLS_SYNC_IAM_USAGE=$(IAM_USAGE)/integration.json $(BIN)/pytest tests/integration -q -p no:cacheprovider --durations=10

# Every action each function's role grants was used by a handler in those tiers, or is
# listed with the reason AWS needs it (tests/support/iam_coverage.py EXEMPT).
iam-coverage: $(STAMP)
	$(PY) -m tests.support.iam_coverage $(IAM_USAGE)/functional.json $(IAM_USAGE)/integration.json

# checkov in its own tool environment (.tools/checkov); exit 3 = NOT RUN (cannot install).
checkov:
	@scripts/checkov.sh

# The two slow tiers run side by side (one core each: the functional tier is moto in-process,
# the integration tier moto server and simulators on their own ports, nothing shared); -O
# keeps each tier's output together. Alone, one after the other, they took ~9 min here.
test: lint typecheck template-check browser test-unit
	@rm -f $(IAM_USAGE)/functional.json $(IAM_USAGE)/integration.json
	@$(MAKE) --no-print-directory -j2 -O test-functional test-integration
	@$(MAKE) --no-print-directory iam-coverage
	@scripts/checkov.sh; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 3 ]

# The issue-14 first sync at full size: 10,000 listings at 2 s a request, across continuations
# (~150 s of CPU, nearly all moto; make test runs the same test with 2,000).
test-big: $(STAMP)
	MLS_SYNC_FIRST_SYNC_LISTINGS=10000 $(BIN)/pytest tests/functional/pipeline/test_big_first_sync.py -q -p no:cacheprovider
	MLS_SYNC_BUDGET_LISTINGS=2000 $(BIN)/pytest tests/functional/pipeline/test_shared_budget.py -q -p no:cacheprovider -k eight_workers
	MLS_SYNC_PUSH_FLOOD=10000 $(BIN)/pytest tests/integration/push/test_push_flood.py -q -s -p no:cacheprovider

# Headless Chromium for tests/integration/demo/test_report_screenshot.py (and `mls-sync report
# --out FILE.png`): Debian's chromium through apt-get where this machine allows it; otherwise
# a NOT INSTALLED line saying why, and that test fails naming this target.
.PHONY: browser
browser:
	@scripts/ensure-chromium.sh

run: $(STAMP)
	$(BIN)/mls-sync demo

# sam build pins its own boto3/pydantic: it lives in its own environment under .tools/.
$(SAM_VENV)/.installed:
	@test -n "$(PYTHON_BOOT)" || { echo "error: no Python >= 3.11 found" >&2; exit 2; }
	@test -x $(SAM_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(SAM_VENV)
	@$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(SAM_VENV)/bin/uv pip install --quiet --python $(SAM_VENV)/bin/python "aws-sam-cli>=1.140"
	@touch $@

# Then bytecode for every module of the output, checked by source hash (PEP 552): SAM zips
# each file dated 1980, so a timestamp .pyc never validates in Lambda and, the code being
# read-only there, every cold start would compile every module (bench cold_start).
build: $(SAM_VENV)/.installed
	PATH="$(dir $(PYTHON_BOOT)):$$PATH" $(SAM_VENV)/bin/sam build --template-file template.yaml
	$(PYTHON_BOOT) -m compileall -q -f -j 0 --invalidation-mode checked-hash .aws-sam/build

build-check: build $(STAMP)
	$(PY) -m mls_sync_local.build_check .aws-sam/build

bench: $(STAMP)
	$(PY) -m bench

audit: $(STAMP)
	@scripts/audit.sh

lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.13 --quiet -o requirements-dev.lock
	$(BIN)/uv pip compile layers/core/requirements.in --python-version 3.13 \
	  --python-platform aarch64-manylinux_2_28 --quiet --no-header -c requirements-dev.lock \
	  --no-emit-package boto3 --no-emit-package botocore --no-emit-package s3transfer \
	  -o layers/core/requirements.txt

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .mypy_cache .pytest_cache .ruff_cache
