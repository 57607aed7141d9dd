#!/usr/bin/env bash
# Run one fuzz target for a number of seconds: ./run.sh <target> <seconds>
#
# Installs what it needs when missing (cargo-fuzz from crates.io, a C++ compiler for
# libFuzzer), and runs libFuzzer through `cargo fuzz` on stable Rust: RUSTC_BOOTSTRAP=1 lets
# stable rustc take the -Z flags cargo-fuzz passes. Exits non-zero if the target crashes;
# the crashing input is then in artifacts/<target>/.
#
# Environment: FUZZ_SANITIZER (default "none": the code under test is safe Rust, so the
# fuzzer hunts panics and broken invariants; "address" turns ASan on). FUZZ_TARGET_DIR
# (default target/ here): where the instrumented build goes; `make fuzz` keeps it outside the
# checkout so a fresh clone (CI) does not rebuild every dependency.
set -euo pipefail

usage() { echo "usage: $0 <target> <seconds>" >&2; exit 2; }
[ $# -eq 2 ] || usage
target=$1
seconds=$2
case $seconds in '' | *[!0-9]*) usage ;; esac

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if ! command -v c++ >/dev/null 2>&1; then
    echo "run.sh: installing a C++ compiler (libFuzzer is built from source)" >&2
    apt-get update -qq && apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ ! -f "fuzz_targets/$target.rs" ]; then
    echo "run.sh: no target '$target'; have: $(cd fuzz_targets && ls | sed 's/\.rs$//' | tr '\n' ' ')" >&2
    exit 2
fi

# The working corpus grows in corpus/<target> (not committed); the committed seeds are read
# as a second corpus directory and never written.
mkdir -p "corpus/$target"
seeds="seeds/$target"
[ -d "$seeds" ] || seeds=""

# The pipeline target reads a program: short inputs say little, so libFuzzer may try long
# ones from the start instead of growing the length limit slowly.
extra=""
if [ "$target" = pipeline ]; then extra="-len_control=0"; fi

export RUSTC_BOOTSTRAP=1
exec cargo fuzz run \
    --sanitizer "${FUZZ_SANITIZER:-none}" \
    --target-dir "${FUZZ_TARGET_DIR:-target}" \
    "$target" "corpus/$target" $seeds \
    -- -max_total_time="$seconds" -max_len=2048 $extra \
    -print_final_stats=1
