#!/bin/bash
# setup-host.sh: prepare this host for hutch's integration tests. Run as root;
# idempotent and quick on the second run.
#
#   hutch-t1  a normal user WITH /etc/subuid and /etc/subgid ranges
#   hutch-t2  a normal user WITHOUT any ranges (single-id fallback)
#   auditd    started if not running (the audit test needs it)
#   /dev/fuse, /dev/net/tun  made usable by unprivileged users (fuse-overlayfs, pasta)
#   images    built into $HUTCH_TEST_DIR/images (default /var/tmp/hutch-test)
#
# Prints the images directory on stdout.
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "setup-host.sh: run as root" >&2; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=${HUTCH_TEST_DIR:-/var/tmp/hutch-test}

# Serialise concurrent setups (each test binary runs this once). Bounded, so
# a lock held by a stray process fails the run instead of hanging it.
exec 8>/run/hutch-test-setup.lock
flock -w 600 8 || { echo "setup-host.sh: /run/hutch-test-setup.lock still held after 600 s (fuser -v it)" >&2; exit 1; }

ensure_user() {
    id "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$1"
}

# next_free_range FILE: first id after every range in FILE (at least 100000)
next_free_range() {
    awk -F: 'BEGIN { m = 100000 } NF >= 3 { e = $2 + $3; if (e > m) m = e } END { print m }' "$1"
}

ensure_ranges() { # user
    local user=$1 uid start
    uid=$(id -u "$user")
    touch /etc/subuid /etc/subgid
    if ! grep -qE "^($user|$uid):" /etc/subuid; then
        start=$(next_free_range /etc/subuid)
        usermod --add-subuids "$start-$((start + 65535))" "$user"
    fi
    if ! grep -qE "^($user|$uid):" /etc/subgid; then
        start=$(next_free_range /etc/subgid)
        usermod --add-subgids "$start-$((start + 65535))" "$user"
    fi
}

remove_ranges() { # user
    local user=$1 uid
    uid=$(id -u "$user")
    for f in /etc/subuid /etc/subgid; do
        [[ -f $f ]] && sed -i -E "/^($user|$uid):/d" "$f"
    done
}

ensure_user hutch-t1
ensure_ranges hutch-t1
ensure_user hutch-t2
remove_ranges hutch-t2

# The audit test needs a running audit daemon (no systemd here).
if command -v auditctl >/dev/null; then
    if ! pgrep -x auditd >/dev/null; then
        if [[ -x /sbin/auditd ]]; then
            # The daemon must not inherit the lock (fd 8): it would hold it for
            # its whole life and every later setup would wait on it forever.
            /sbin/auditd 8>&- </dev/null >&2 || echo "setup-host.sh: warning: could not start auditd" >&2
            for _ in $(seq 50); do pgrep -x auditd >/dev/null && break; sleep 0.1; done
        fi
    fi
    auditctl -e 1 >/dev/null 2>&1 || true
fi

for dev in /dev/fuse /dev/net/tun; do
    [[ -e $dev ]] && chmod 0666 "$dev"
done

# setpriv and the loginuid trick need util-linux; newuidmap needs uidmap.
for tool in setpriv newuidmap newgidmap script; do
    command -v "$tool" >/dev/null || echo "setup-host.sh: warning: $tool missing" >&2
done

mkdir -p "$BASE"
chmod 0755 "$BASE"
"$HERE/../rootfs-tools/build-images.sh" "$BASE/images" >&2
chmod -R a+rX "$BASE/images"
echo "$BASE/images"
