#!/bin/bash
# try.sh [COMMAND...]: build hutch and the busybox test image (offline,
# once), then start a container from it. Runs as your own user.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
images=${HUTCH_IMAGES:-${XDG_CACHE_HOME:-$HOME/.cache}/hutch-images}
[[ -d $images/oci ]] || rootfs-tools/build-images.sh "$images" >/dev/null
if [[ $# -eq 0 ]]; then set -- sh; fi
tty_flags=-i
[[ -t 0 && -t 1 ]] && tty_flags=-it
exec target/release/hutch run --rm "$tty_flags" "oci:$images/oci:latest" "$@"
