# One entry point for people and CI. Everything installs what it needs first.
#   make test   set up (packages, huge pages) and run every check CI runs
#   make demo   set up and run the namespace testbed demo
#   make e2e    the end-to-end tests through the namespace testbed (E2E_MODE below)
#   make baseline  the same show through Linux nftables NAT and the appliance, figures side by side
#   make fuzz   every cargo-fuzz target for FUZZ_SECONDS each (part of make test)
#   make gwlb-selftest  the GENEVE gateway load balancer emulator against two fake appliances (part of make test)
#   make docker-demo   the same show with the appliance, client, router and server as containers
#   make docker-test   that show, asserted, cleaned up even when it fails (part of make test)
#   make docker-bench  a DPDK generator container to the appliance container over vhost-user
#   make bench-compare  appliance vs dpdk-testpmd io / 5tswap and OVS-DPDK, natively over vhost-user
#   make docker-compare  kernel nftables vs AF_PACKET (and its tuning) vs AF_XDP, containers
#   make image  the cloud VM image (deploy/); make image-test boots it in qemu (part of make test)
SHELL := /bin/bash
CARGO ?= cargo
# What plays the appliance in the e2e tests (appliance/tests/e2e.rs): appliance (the real
# binary), kernel (Linux nftables NAT, the reference the tests were validated against), or
# both. `make demo` follows it.
E2E_MODE ?= appliance
export NVA_E2E_MODE ?= $(E2E_MODE)

.PHONY: all deps bench-deps hugepages build release test lint unit dynamic configs fuzz gwlb-selftest demo e2e baseline bench bench-compare clean \
	docker-image docker-demo docker-test docker-bench docker-compare docker-down \
	image-deps image image-cloud image-test

all: release

deps:
	@scripts/deps.sh

# What bench-compare drives besides the appliance: OVS with DPDK (openvswitch-switch-dpdk).
bench-deps:
	@scripts/deps.sh bench

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

# Each libFuzzer target (appliance/fuzz/fuzz_targets) for FUZZ_SECONDS, starting from its
# committed seeds; run.sh installs cargo-fuzz only when it is missing. A crash fails the
# run and leaves the input in appliance/fuzz/artifacts/<target>/.
# The instrumented build lives outside the checkout (FUZZ_TARGET_DIR), so a fresh clone
# rebuilds only the appliance's own crates, not every dependency.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(basename $(notdir $(wildcard appliance/fuzz/fuzz_targets/*.rs)))
export FUZZ_TARGET_DIR ?= $(HOME)/.cache/nva-fuzz-target

fuzz: deps
	@for t in $(FUZZ_TARGETS); do appliance/fuzz/run.sh $$t $(FUZZ_SECONDS) || exit 1; done

# testbed/gwlb-emu.py (the GWLB emulator) in namespaces with two reflectors standing in for
# appliances: traffic both ways, flow stickiness, GENEVE option checks, health failover and
# rebalance. Root; no build needed; about 25 s.
gwlb-selftest: deps
	python3 testbed/gwlb-emu-selftest.py -v

test: lint unit dynamic configs fuzz gwlb-selftest docker-test image-test

# The cloud NVA image (deploy/README.md): a GPT/UEFI Debian 12 disk, raw and qcow2, cached in
# NVA_IMAGE_CACHE (default ~/.cache/nva-image) by a hash of its inputs. image-cloud adds the
# Azure VHD, AWS VMDK and GCP tar.gz. image-test boots it in qemu (KVM if a guest runs under
# it here, else TCG) and forwards through it: about 5 minutes under TCG with the image cached,
# 1.5-2 more to build it (and 4.5 for the appliance's release build on a clean checkout).
image-deps:
	@scripts/deps.sh image

image: image-deps
	deploy/build-image.sh

image-cloud: image-deps
	deploy/build-image.sh cloud

image-test: image-deps
	deploy/image-test.sh

# The demo follows E2E_MODE too (kernel or appliance; both means appliance).
demo: deps hugepages release
	MODE=$(if $(filter kernel,$(E2E_MODE)),kernel,appliance) testbed/demo.sh

# Release build of the appliance for figures worth quoting; one test at a time, output shown.
e2e: deps release
	NVA_APPLIANCE=$(CURDIR)/target/release/appliance $(CARGO) test -p appliance --test e2e -- --nocapture --test-threads=1

baseline: deps release
	testbed/baseline.sh kernel $(if $(filter kernel,$(E2E_MODE)),,appliance)

bench: deps hugepages release
	benches/forwarding.sh

# The appliance next to dpdk-testpmd io and 5tswap and OVS-DPDK as DUTs on CPU 1, testpmd
# flowgen on CPU 0, over vhost-user, no Docker: 1 K, 10 K, 1 M flows, 3 interleaved
# repetitions (about 10 min), SNAT checked at the sink, a chart (compare-plot).
# FLOWS, REPS, SECS, WARMUP, DUTS, CAPTURE_KB, BENCH_OUT: see benches/compare.sh.
bench-compare: bench-deps hugepages release
	$(CARGO) build --release -p compare-plot
	benches/compare.sh

# The Docker testbed (docker/): Docker is installed and dockerd started when missing (and
# stopped again when these started it); images are built locally, nothing is pulled.
docker-image: deps release
	@bash -c 'source docker/lib.sh && dk_deps && dk_engine_up && dk_images && dk_engine_down'

docker-demo: deps release
	docker/demo.sh

docker-test: deps release
	docker/test.sh

# Mpps and cycles per packet at 1 K and 1 M flows, testpmd flowgen -> vhost-user ->
# virtio-user appliance; raises nr_hugepages by 256 for the run and gives them back.
docker-bench: deps hugepages release
	docker/bench.sh

# The data paths side by side on the container topology (curl, iperf3 TCP, 64-byte UDP).
docker-compare: deps release
	docker/compare.sh

docker-down:
	docker/down.sh

clean:
	$(CARGO) clean
