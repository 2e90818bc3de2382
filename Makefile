# The two commands of the README:
#   make run   — set up, build, run the quick sweep under mpirun -n 4, write the report
#   make test  — set up, build, run every test (Swift, MPI, analysis, Slurm end to end)
SHELL := /bin/bash
SWIFT ?= swift
# The MPI library to build against: openmpi (default) or mpich (`make MPI=mpich build`),
# or the name of a site MPI's pkg-config file. Package.swift reads it as MLRA_MPI; each
# library builds in its own scratch folder, so switching never mixes their objects.
MPI ?= openmpi
export MLRA_MPI := $(MPI)
SCRATCH := $(if $(filter openmpi,$(MPI)),.build,.build-$(MPI))
BUILD_FLAGS := -c release --scratch-path $(SCRATCH)
MLRA := $(SCRATCH)/release/mlra
RANKS ?= 4
RESULTS ?= results
# mpirun as root needs these; oversubscription lets 4 ranks share this 2-core node.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
# MPICH's Hydra oversubscribes and runs as root as it is.
MPIRUN := $(if $(filter mpich,$(MPI)),mpiexec.mpich -n $(RANKS),mpirun -n $(RANKS) --oversubscribe --bind-to none)
# The revision recorded in every CSV row (git_rev), "-dirty" when the tree has changes.
export MLRA_GIT_REV := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

.PHONY: setup setup-build build run demo test test-swift test-analysis test-slurm test-slurm-multinode test-mpich dist clean

# Everything: the system libraries (apt-get only for what is missing) and the analysis venv.
setup:
	@bash scripts/setup.sh

# The system libraries only: what `make build` needs (no venv, no apt-get when they are present).
setup-build:
	@bash scripts/setup.sh --build

build: setup-build
	$(SWIFT) build $(BUILD_FLAGS)

# Main job: the quick sweep (every variant, TP 1/2/4) and its report. A rerun resumes
# (configurations already in results/quick.csv are skipped); `make clean` starts afresh.
run: setup build
	@mkdir -p $(RESULTS)
	$(MPIRUN) $(MLRA) sweep --preset quick --out $(RESULTS)/quick.csv --samples $(RESULTS)/quick.samples.csv
	.venv/bin/python -m analysis report $(RESULTS)/quick.csv --samples $(RESULTS)/quick.samples.csv --noise '$(RESULTS)/quick.csv.noise-*.json' --out report/
	@echo "report: report/report.md"

test: setup build test-swift test-analysis test-slurm test-slurm-multinode

# The suites are XCTest; Swift Testing is off so its empty "0 tests" summary is not the last word.
# MLRA_NVRTC: NVRTC from the venv (scripts/setup.sh), for the GPU kernels' compile check.
test-swift:
	MLRA_NVRTC="$$(ls -d $(CURDIR)/.venv/lib/python3*/site-packages/nvidia/cu13/lib | head -1)" \
	    $(SWIFT) test $(BUILD_FLAGS) --disable-swift-testing

test-analysis:
	.venv/bin/python -m pytest analysis/tests -q

test-slurm:
	MLRA_BIN=$(CURDIR)/$(MLRA) bash integration/slurm/slurm_e2e.sh

# Two Slurm nodes on this machine (network namespaces on a bridge); needs root.
test-slurm-multinode:
	MLRA_BIN=$(CURDIR)/$(MLRA) bash integration/slurm/slurm_multinode_e2e.sh

# The MPI tests against MPICH (its own build in .build-mpich, run with mpiexec.mpich):
# forward at N = 1, 2, 4 against the reference with the collectives counted, the
# error agreement, and the rows' mpi_library.
MPICH_TESTS := ParallelCommandTests
test-mpich:
	$(MAKE) MPI=mpich build
	MLRA_MPI=mpich MLRA_MPIEXEC=/usr/bin/mpiexec.mpich \
	    $(SWIFT) test -c release --scratch-path .build-mpich --disable-swift-testing --filter '$(MPICH_TESTS)'

# A relocatable tarball for nodes without Swift (GPU nodes): a statically linked
# (--static-swift-stdlib), stripped mlra, the job scripts, the benchmarks and the analysis.
# What the node needs is in README.md ("Running where Swift is not installed").
DIST := dist/mlra-$(MLRA_GIT_REV)-linux-$(shell uname -m)
dist: setup
	$(SWIFT) build $(BUILD_FLAGS) --static-swift-stdlib --product mlra --scratch-path .build-static
	rm -rf $(DIST) && mkdir -p $(DIST)/bin
	cp .build-static/release/mlra $(DIST)/bin/mlra && strip $(DIST)/bin/mlra
	cp -r jobs benchmarks analysis docs README.md $(DIST)/
	rm -rf $(DIST)/analysis/tests $(DIST)/analysis/__pycache__
	tar -C dist -czf $(DIST).tar.gz $(notdir $(DIST))
	@echo "dist: $(DIST).tar.gz"

clean:
	rm -rf .build .build-mpich .build-static dist $(RESULTS) report
