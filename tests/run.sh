#!/bin/bash
# run.sh [CARGO TEST ARGS...]: the one command that runs hutch's tests.
# Run as root: prepares the host (tests/setup-host.sh), then runs every test
# with --no-fail-fast. Integration tests drop to the unprivileged users
# hutch-t1/hutch-t2 for every hutch invocation. With CI set, a test that
# cannot run here fails instead of skipping.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) -eq 0 ]] || { echo "tests/run.sh: run as root (sudo tests/run.sh)" >&2; exit 1; }
if ! command -v cargo >/dev/null && [[ -f ${CARGO_HOME:-$HOME/.cargo}/env ]]; then
    . "${CARGO_HOME:-$HOME/.cargo}/env"
fi
command -v cargo >/dev/null || { echo "$0: cargo not found on PATH" >&2; exit 1; }
HUTCH_TEST_IMAGES=$(tests/setup-host.sh)
export HUTCH_TEST_IMAGES
exec cargo test --no-fail-fast "$@"
