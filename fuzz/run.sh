#!/bin/bash
# fuzz/run.sh [SECONDS] [TARGET...]: a short, bounded libFuzzer run of each
# fuzz target (default: all, 10 s each) over the committed corpus, as CI
# does it. Needs only cargo and a C++ compiler: the targets are built with
# the coverage flags cargo-fuzz passes (no sanitizer, so stable rustc
# without RUSTC_BOOTSTRAP), unoptimised so the build stays short.
# New inputs go to a scratch copy, never into fuzz/corpus; a crash is
# saved under fuzz/artifacts/TARGET/ and fails the run.
# For long sessions use cargo fuzz (README.md, "Tests").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${1:-10}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^hutch-fuzz$')
fi
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions"
export CARGO_PROFILE_DEV_DEBUG=0
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
cargo build --locked --manifest-path Cargo.toml --target "$triple" "${bins[@]}"
bindir=${CARGO_TARGET_DIR:-target}/$triple/debug
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    # -max_total_time bounds the run; -timeout fails an input that hangs.
    if "$bindir/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=0 \
        "$scratch/$t" "corpus/$t" >"$scratch/$t.log" 2>&1; then
        echo "fuzz $t: ok ($(find "$scratch/$t" -type f | wc -l) new inputs in ${secs}s)"
    else
        echo "fuzz $t: FAILED" >&2
        tail -40 "$scratch/$t.log" >&2
        failed+=("$t")
    fi
done
[[ ${#failed[@]} -eq 0 ]] || { echo "fuzz: failed: ${failed[*]}" >&2; exit 1; }
