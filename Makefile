# One entry point for people and CI. Everything installs what it needs first.
#   make test   set up (packages, huge pages) and run every check CI runs
#   make demo   set up and run the namespace testbed demo
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all deps hugepages build release test lint unit dynamic configs demo bench clean

all: release

deps:
	@scripts/deps.sh

hugepages:
	@scripts/hugepages.sh

build: deps
	$(CARGO) build --workspace --all-targets

release: deps
	$(CARGO) build --release -p appliance

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: deps hugepages
	$(CARGO) test --workspace

# The shared-library build (Debian's EAL loads every PMD from its driver folder).
dynamic: deps
	$(CARGO) test -p dpdk-sys --features dynamic --test eal
	$(CARGO) test -p appliance --features dynamic --test dataplane_null

configs: deps
	@for c in configs/*.toml; do $(CARGO) run -q -p appliance -- check --config $$c || exit 1; done

test: lint unit dynamic configs

demo: deps hugepages release
	testbed/demo.sh

bench: deps hugepages release
	benches/forwarding.sh

clean:
	$(CARGO) clean
