# bench/storage.sh: the `storage` group of bench/hutch-bench (sourced by it;
# uses its variables and helpers: AS_USER, WORK, IMAGES, START_TIMEOUT, ...).
# Per storage driver: start latency, small-file and large-file I/O against
# a host dir.
# shellcheck shell=bash
# ================================================================ storage group
# The small-file workload: busybox sh writes IO_FILES files into DIR, reads
# them back and removes them (the same script in the container and on the host).
IO_SCRIPT='d=$1; n=$2; mkdir -p "$d"; i=0; while [ $i -lt $n ]; do echo "data $i" > "$d/f$i"; i=$((i+1)); done; cat "$d"/f* > /dev/null; rm -rf "$d"'
# The large-file workload: one LARGE_MB file written to disk (fsync), read
# back and removed.
LARGE_SCRIPT='d=$1; n=$2; mkdir -p "$d"; dd if=/dev/zero of="$d/big" bs=1M count="$n" conv=fsync 2>/dev/null; cat "$d/big" > /dev/null; rm -rf "$d"'

# storage_sample REP ROW KIND: one bounded run; appends REP,ROW,KIND,ms to $TCSV.
storage_sample() {
    local t0 t1 rc=0 cmd
    case $3 in
    start) cmd=("${AS_USER[@]}" "${T_ENV[@]}" "$WORK/hutch" run --rm --network none --pull=never --storage-driver "$2" bench/busybox /bin/true) ;;
    io | large)
        local script=$IO_SCRIPT size=$IO_FILES
        [ "$3" = io ] || { script=$LARGE_SCRIPT; size=$LARGE_MB; }
        if [ "$2" = host ]; then
            cmd=("${AS_USER[@]}" "$IMAGES/rootfs/bin/busybox" sh -c "$script" sh "$TW/hostio" "$size")
        else
            cmd=("${AS_USER[@]}" "${T_ENV[@]}" "$WORK/hutch" run --rm --network none --pull=never --storage-driver "$2" bench/busybox sh -c "$script" sh /root/io "$size")
        fi
        ;;
    esac
    t0=$EPOCHREALTIME
    timeout "$START_TIMEOUT" "${cmd[@]}" >"$TW/last.log" 2>&1 </dev/null &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    t1=$EPOCHREALTIME
    [ "$rc" = 0 ] || return "$rc"
    t0=${t0/[.,]/}
    t1=${t1/[.,]/}
    echo "$1,$2,$3,$(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000)))" >>"$TCSV"
}

bench_storage() {
    local d rep k n s rows=() unavail=""
    # Missing tools skip this group (the others may still have run).
    [ "${HAVE[hutch]}" = 1 ] || { say "storage: skipped: no hutch binary (cargo build --release, or --hutch PATH)"; return 0; }
    have skopeo || { say "storage: skipped: skopeo is needed to make a docker-archive for hutch load"; return 0; }
    TW=$WORK/storage
    IMAGES=$OUT/images
    TCSV=$TW/samples.csv
    mkdir -p "$TW"
    chmod 0755 "$TW"
    [ "$(id -u)" -ne 0 ] || chown "$U_UID:$U_GID" "$TW"
    T_ENV=(env "XDG_DATA_HOME=$TW/data" "XDG_CONFIG_HOME=$TW/config")
    as_user mkdir -m 0700 "$TW/data" "$TW/config"
    if [ ! -d "$IMAGES/rootfs/bin" ] || [ ! -f "$IMAGES/oci/index.json" ]; then
        say "storage: building the busybox test images once into $IMAGES"
        timeout 600 "$REPO/rootfs-tools/build-images.sh" "$IMAGES" >&2 || die "storage: rootfs-tools/build-images.sh failed"
    fi
    chmod a+rx "$IMAGES"
    timeout 120 "${AS_USER[@]}" skopeo copy -q "oci:$IMAGES/oci:latest" \
        "docker-archive:$TW/busybox.tar:bench/busybox:latest" >"$TW/last.log" 2>&1 </dev/null ||
        die "storage: skopeo copy failed: $(last_error_in "$TW")"
    timeout 120 "${AS_USER[@]}" "${T_ENV[@]}" "$WORK/hutch" load -i "$TW/busybox.tar" >"$TW/last.log" 2>&1 </dev/null ||
        die "storage: hutch load failed: $(last_error_in "$TW")"
    echo "rep,row,kind,ms" >"$TCSV"
    for d in overlay fuse-overlayfs vfs; do
        # One unrecorded warm-up of each kind, which is also the probe.
        if storage_sample 0 "$d" start && storage_sample 0 "$d" io && storage_sample 0 "$d" large; then
            rows+=("$d")
        else
            unavail+="$d	$(last_error_in "$TW")"$'\n'
            say "storage: $d unavailable: $(last_error_in "$TW")"
        fi
    done
    storage_sample 0 host io && storage_sample 0 host large ||
        die "storage: the host I/O baseline failed: $(last_error_in "$TW")"
    sed -i '/^0,/d' "$TCSV"
    rows+=(host)
    say "storage ($MODE): $STORAGE_REPS repetitions of start, $IO_FILES-file and $LARGE_MB MiB I/O for (${rows[*]}), interleaved"
    n=${#rows[@]}
    for rep in $(seq 1 "$STORAGE_REPS"); do
        for k in $(seq 0 $((n - 1))); do
            s=${rows[$(((k + rep) % n))]}
            if [ "$s" != host ]; then
                storage_sample "$rep" "$s" start || say "storage: $s start failed in repetition $rep: $(last_error_in "$TW")"
            fi
            storage_sample "$rep" "$s" io || say "storage: $s io failed in repetition $rep: $(last_error_in "$TW")"
            storage_sample "$rep" "$s" large || say "storage: $s large failed in repetition $rep: $(last_error_in "$TW")"
        done
    done
    local stamp res
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    res=$OUT/results-storage-$MODE-$stamp
    cp "$TCSV" "$res.csv"
    awk -F, -v mode="$MODE" -v reps="$STORAGE_REPS" -v files="$IO_FILES" -v large="$LARGE_MB" -v machine="$MACHINE" \
        -v commit="$HUTCH_VER" -v unavail="$unavail" -v json="$res.json" '
function median(key,   n, i, j, t) {
    n = cnt[key]
    for (i = 1; i <= n; i++) a[i] = v[key, i]
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
NR > 1 { key = $2 "," $3; cnt[key]++; v[key, cnt[key]] = $4 }
END {
    nu = split(unavail, ul, "\n"); for (i = 1; i <= nu; i++) if (ul[i] != "") { split(ul[i], f, "\t"); why[f[1]] = f[2] }
    printf "\nhutch-bench storage (%s mode): per storage driver, %d interleaved repetitions after one warm-up each\n", mode, reps
    printf "start: hutch run --rm --network none IMAGE /bin/true; io: busybox sh writes, reads and removes %d small files;\n", files
    printf "large: dd writes one %d MiB file (conv=fsync), cat reads it, rm removes it\n", large
    printf "io time in a container = run(io) - median run(true) of that driver; host: the same script in a host directory\n"
    printf "machine: %s\n\n", machine
    printf "%-16s %10s %10s %12s %10s %12s %12s\n", "driver", "start ms", "x overlay", "io ms", "io / host", "large ms", "large / host"
    printf "%-16s %10s %10s %12s %10s %12s %12s\n", "------", "--------", "---------", "-----", "---------", "--------", "------------"
    host = ("host,io" in cnt) ? median("host,io") : 0
    lhost = ("host,large" in cnt) ? median("host,large") : 0
    base = ("overlay,start" in cnt) ? median("overlay,start") : 0
    split("overlay fuse-overlayfs vfs", ds, " ")
    js = ""
    for (i = 1; i <= 3; i++) {
        d = ds[i]
        if (!((d ",start") in cnt) || !((d ",io") in cnt)) {
            printf "%-16s unavailable: %s\n", d, (d in why) ? why[d] : "no samples"
            continue
        }
        st = median(d ",start"); io = median(d ",io") - st; if (io < 0) io = 0
        lg = ((d ",large") in cnt) ? median(d ",large") - st : 0; if (lg < 0) lg = 0
        printf "%-16s %10.1f %10s %12.1f %10s %12.1f %12s\n", d, st, (base > 0 ? sprintf("%.2f", st / base) : "-"), io, (host > 0 ? sprintf("%.2f", io / host) : "-"), lg, (lhost > 0 ? sprintf("%.2f", lg / lhost) : "-")
        if (d == "overlay") { oio = (host > 0 ? io / host : 0); olg = (lhost > 0 ? lg / lhost : 0) }
        js = js sprintf("%s{\"driver\":\"%s\",\"start_median_ms\":%.3f,\"io_ms\":%.3f,\"io_over_host\":%.3f,\"large_ms\":%.3f,\"large_over_host\":%.3f}", js == "" ? "" : ",", d, st, io, (host > 0 ? io / host : 0), lg, (lhost > 0 ? lg / lhost : 0))
    }
    printf "%-16s %10s %10s %12.1f %10s %12.1f %12s\n", "host directory", "-", "-", host, "1.00", lhost, "1.00"
    if (oio > 0 && olg > 0)
        printf "\nkernel overlay I/O within 10%% of the host directory: small files %.2f, large file %.2f   aim <= 1.10: %s\n", oio, olg, (oio <= 1.10 && olg <= 1.10) ? "MET" : "MISSED"
    printf "{\"benchmark\":\"storage\",\"mode\":\"%s\",\"repetitions\":%d,\"io_files\":%d,\"machine\":\"%s\",\"hutch_commit\":\"%s\",\"host_io_ms\":%.3f,\"host_large_ms\":%.3f,\"results\":[%s]}\n", mode, reps, files, machine, commit, host, lhost, js > json
}' "$TCSV" | tee "$res.txt"
    say "wrote $res.csv $res.json $res.txt"
    # Files the containers made belong to subordinate ids: remove from inside.
    timeout 60 "${AS_USER[@]}" "${T_ENV[@]}" "$WORK/hutch" rmi -f bench/busybox >/dev/null 2>&1 </dev/null || true
    timeout 60 "${AS_USER[@]}" "${T_ENV[@]}" "$WORK/hutch" image prune -f >/dev/null 2>&1 </dev/null || true
}
# last_error_in DIR: the last non-empty line of DIR/last.log.
last_error_in() { grep -v '^[[:space:]]*$' "$1/last.log" | tail -1 | cut -c1-160; }
