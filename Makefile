# The two commands of the README:
#   make run   — set up, build, run the quick sweep under mpirun -n 4, write the report
#   make test  — set up, build, run every test (Swift, MPI, analysis, Slurm end to end)
SHELL := /bin/bash
SWIFT ?= swift
BUILD_FLAGS := -c release
MLRA := .build/release/mlra
RANKS ?= 4
RESULTS ?= results
# mpirun as root needs these; oversubscription lets 4 ranks share this 2-core node.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
MPIRUN := mpirun -n $(RANKS) --oversubscribe --bind-to none
# The revision recorded in every CSV row (git_rev), "-dirty" when the tree has changes.
export MLRA_GIT_REV := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

.PHONY: setup build run demo test test-swift test-analysis test-slurm clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build $(BUILD_FLAGS)

# Main job: the quick sweep (every variant, TP 1/2/4) and its report. A rerun resumes
# (configurations already in results/quick.csv are skipped); `make clean` starts afresh.
run: build
	@mkdir -p $(RESULTS)
	$(MPIRUN) $(MLRA) sweep --preset quick --out $(RESULTS)/quick.csv --samples $(RESULTS)/quick.samples.csv
	.venv/bin/python -m analysis report $(RESULTS)/quick.csv --samples $(RESULTS)/quick.samples.csv --out report/
	@echo "report: report/report.md"

test: build test-swift test-analysis test-slurm

# The suites are XCTest; Swift Testing is off so its empty "0 tests" summary is not the last word.
test-swift:
	$(SWIFT) test $(BUILD_FLAGS) --disable-swift-testing

test-analysis:
	.venv/bin/python -m pytest analysis/tests -q

test-slurm:
	bash tests/slurm/slurm_e2e.sh

clean:
	rm -rf .build $(RESULTS) report
