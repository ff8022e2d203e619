#!/bin/bash
# build-images.sh OUTDIR: build hutch's test images offline from busybox-static.
#
# Produces (all world-readable, so tests can run hutch as an unprivileged user):
#   OUTDIR/rootfs/           plain root filesystem for `hutch run --rootfs`
#   OUTDIR/oci/              OCI image layout, tags `latest` and `entry`
#   OUTDIR/oci-entry/        OCI image layout, tag `latest` = the `entry` image
#   OUTDIR/busybox.oci.tar   oci-archive of OUTDIR/oci (both tags)
#
# Image `latest`: two gzip layers.
#   layer 1 = the rootfs + /etc/removed-by-whiteout
#   layer 2 = /etc/layer2 ("layer2") + whiteout etc/.wh.removed-by-whiteout
#   config: Env PATH + IMAGE_VAR=from-image, Cmd ["sh"], WorkingDir "/"
#   /home/tester and /home/tester/owned-by-tester are 1000:1000 in the tar,
#   /usr/local/bin/suidprobe is 0:0 mode 04755; everything else is 0:0.
# Image `entry`: same layers; Entrypoint ["/bin/echo","entry:"],
#   Cmd ["default-arg"], WorkingDir /tmp, User "1000:1000".
#
# Needs: bash, busybox-static (/bin/busybox), gcc with static glibc, GNU tar,
# gzip, sha256sum. No network. Idempotent: a stamp of the inputs skips work
# when nothing changed; a lock serialises concurrent callers.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUSYBOX=${BUSYBOX:-/bin/busybox}
MTIME='2024-01-01 00:00:00Z'

die() { echo "build-images: $*" >&2; exit 1; }
[[ -x $BUSYBOX ]] || die "$BUSYBOX missing (apt-get install busybox-static)"
command -v gcc >/dev/null || die "gcc missing"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec 9>"$OUT/.lock"
flock 9

stamp=$( { sha256sum "$BUSYBOX" "${BASH_SOURCE[0]}" "$HERE"/probes/*.c; id -u; } | sha256sum | cut -d' ' -f1)
if [[ -f $OUT/.stamp && $(cat "$OUT/.stamp") == "$stamp" && -f $OUT/busybox.oci.tar ]]; then
    exit 0
fi

umask 022
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- probes -----------------------------------------------------------------
mkdir -p "$WORK/probes"
for src in "$HERE"/probes/*.c; do
    name=$(basename "$src" .c)
    gcc -static -O2 -Wall -o "$WORK/probes/$name" "$src" || die "compiling $src"
    strip "$WORK/probes/$name" 2>/dev/null || true
done

# --- rootfs -----------------------------------------------------------------
R=$WORK/rootfs
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,home/tester,root,proc,sys,dev,tmp,var/tmp,mnt,run}
chmod 1777 "$R/tmp" "$R/var/tmp"
chmod 0700 "$R/root"
cp "$BUSYBOX" "$R/bin/busybox"
chmod 0755 "$R/bin/busybox"
while read -r applet; do
    [[ -z $applet || $applet == bin/busybox ]] && continue
    mkdir -p "$R/$(dirname "$applet")"
    [[ -e $R/$applet || -L $R/$applet ]] || ln -s /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)
[[ -L $R/bin/sh ]] || ln -s /bin/busybox "$R/bin/sh"

cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$R/etc/group" <<'EOF'
root:x:0:
tty:x:5:
tester:x:1000:
extra:x:1001:tester
nogroup:x:65534:
EOF
# Mount targets a runtime binds over (a --rootfs directory the user cannot
# write must already have them, as distribution root filesystems do).
echo localhost >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$R/etc/hosts"
: >"$R/etc/resolv.conf"
echo "owned by tester" >"$R/home/tester/owned-by-tester"
# The rootfs for --rootfs is mostly owned by whoever builds it (root in CI);
# give tester its home where we can.
chown -R 1000:1000 "$R/home/tester" 2>/dev/null || true

for p in "$WORK"/probes/*; do
    install -m 0755 "$p" "$R/usr/local/bin/"
done
chmod 04755 "$R/usr/local/bin/suidprobe"
printf '#!/bin/sh\necho should not run\n' >"$R/usr/local/bin/not-executable"
chmod 0644 "$R/usr/local/bin/not-executable"

# --- OCI layers ---------------------------------------------------------------
TAR_OPTS=(--format=gnu --sort=name --numeric-owner --mtime="$MTIME")
L1=$WORK/layer1
cp -a "$R" "$L1"
echo "this file is hidden by a whiteout in layer 2" >"$L1/etc/removed-by-whiteout"
(
    cd "$L1"
    # Everything root-owned except tester's home, appended with 1000:1000.
    tar "${TAR_OPTS[@]}" --owner=0 --group=0 --exclude=./home/tester -cf "$WORK/layer1.tar" .
    tar "${TAR_OPTS[@]}" --owner=1000 --group=1000 -rf "$WORK/layer1.tar" ./home/tester
)
L2=$WORK/layer2
mkdir -p "$L2/etc"
echo layer2 >"$L2/etc/layer2"
: >"$L2/etc/.wh.removed-by-whiteout"
(cd "$L2" && tar "${TAR_OPTS[@]}" --owner=0 --group=0 -cf "$WORK/layer2.tar" ./etc)

# blob FILE MEDIATYPE LAYOUT -> prints a descriptor JSON, stores the blob
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
put_blob() { # put_blob LAYOUT FILE -> echo digest hex
    local h
    h=$(sha "$2")
    mkdir -p "$1/blobs/sha256"
    cp "$2" "$1/blobs/sha256/$h"
    echo "$h"
}
case $(uname -m) in
    x86_64) ARCH=amd64 ;;
    aarch64) ARCH=arm64 ;;
    *) ARCH=$(uname -m) ;;
esac

gzip -9n -c "$WORK/layer1.tar" >"$WORK/layer1.tar.gz"
gzip -9n -c "$WORK/layer2.tar" >"$WORK/layer2.tar.gz"
DIFF1=$(sha "$WORK/layer1.tar")
DIFF2=$(sha "$WORK/layer2.tar")
PATHVAL=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# make_layout DIR TAG:CONFIGJSON... ; writes oci-layout, blobs, index.json
make_layout() {
    local dir=$1
    shift
    mkdir -p "$dir/blobs/sha256"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
    local g1 g2 entries=() tag cfgfile cfg mf mfile
    g1=$(put_blob "$dir" "$WORK/layer1.tar.gz")
    g2=$(put_blob "$dir" "$WORK/layer2.tar.gz")
    for spec in "$@"; do
        tag=${spec%%=*}
        cfgfile=${spec#*=}
        cfg=$(put_blob "$dir" "$cfgfile")
        mfile=$WORK/manifest-$tag.json
        printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
            "$cfg" "$(size "$cfgfile")" "$g1" "$(size "$WORK/layer1.tar.gz")" "$g2" "$(size "$WORK/layer2.tar.gz")" >"$mfile"
        mf=$(put_blob "$dir" "$mfile")
        entries+=("$(printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}' "$mf" "$(size "$mfile")" "$tag")")
    done
    local joined
    joined=$(IFS=,; echo "${entries[*]}")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' "$joined" >"$dir/index.json"
}

config_json() { # config_json EXTRA_CONFIG_FIELDS
    printf '{"created":"2024-01-01T00:00:00Z","architecture":"%s","os":"linux","config":{"Env":["PATH=%s","IMAGE_VAR=from-image"],%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"build-images.sh: busybox rootfs"},{"created":"2024-01-01T00:00:00Z","created_by":"build-images.sh: layer2 + whiteout"}]}' \
        "$ARCH" "$PATHVAL" "$1" "$DIFF1" "$DIFF2"
}
config_json '"Cmd":["sh"],"WorkingDir":"/"' >"$WORK/config-latest.json"
config_json '"Entrypoint":["/bin/echo","entry:"],"Cmd":["default-arg"],"WorkingDir":"/tmp","User":"1000:1000"' >"$WORK/config-entry.json"

make_layout "$WORK/oci" "latest=$WORK/config-latest.json" "entry=$WORK/config-entry.json"
make_layout "$WORK/oci-entry" "latest=$WORK/config-entry.json"
(cd "$WORK/oci" && tar "${TAR_OPTS[@]}" --owner=0 --group=0 -cf "$WORK/busybox.oci.tar" oci-layout index.json blobs)

# --- install atomically-ish ---------------------------------------------------
chmod -R a+rX "$WORK"
for item in rootfs oci oci-entry busybox.oci.tar; do
    rm -rf "${OUT:?}/$item"
    mv "$WORK/$item" "$OUT/$item"
done
chmod a+rx "$OUT"
echo "$stamp" >"$OUT/.stamp"
echo "build-images: images in $OUT" >&2
