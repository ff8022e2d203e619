# bench/growth.sh: the growth group of bench/hutch-bench, which sources it
# (it uses the script's AS_USER, WORK, OUT, HAVE, MODE, say/die/have, the
# pull helpers and EXIT_HOOKS). Two parts:
#
# containers: detached containers running `sleep` pile up, started one at a
#   time with `hutch run -d` and, in a phase of its own, rootless `podman
#   run -d`, until 1, 10 and 50 run at once (quick: 1, 5, 10). Each `run -d`
#   is timed against the count it brings the total to. At each level the
#   memory of the tool's processes is read from /proc/PID/smaps_rollup (PSS
#   and RSS): the per-container keepers (hutch's supervisor, podman's
#   conmon), the containers' own processes (the keepers' descendants), and
#   any other process running with the tool's private XDG_RUNTIME_DIR
#   (podman's pause process). Then every container is removed with one
#   bounded `rm -f`, and the keepers and containers are checked gone.
# pull: hutch pull + unpack+start against skopeo copy + umoci unpack, the
#   pull group's image builder and registry, for three image sizes (layer
#   budgets 4, 16, 64 MiB; quick: 1, 4, 16 MiB).

# g_start TOOL ROUND N: starts container N of ROUND detached (bounded) and
# appends ROUND,TOOL,N,ms to $GCSV; non-zero on failure.
g_start() {
    local t0 t1 rc=0 cmd
    case $1 in
    hutch) cmd=("${G_HENV[@]}" "$WORK/hutch" run -d --name "hbg-$2-$3" --network none --pull=never bench/busybox sleep 3600) ;;
    podman) cmd=("${G_PENV[@]}" podman run -d --name "hbg-$2-$3" --network none --pull=never "$G_PODMAN_IMG" sleep 3600) ;;
    esac
    G_LIVE[$1]=1
    t0=$EPOCHREALTIME
    timeout "$START_TIMEOUT" "${AS_USER[@]}" "${cmd[@]}" >"$GW/last.log" 2>&1 </dev/null &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    t1=$EPOCHREALTIME
    [ "$rc" = 0 ] || return "$rc"
    t0=${t0/[.,]/}
    t1=${t1/[.,]/}
    echo "$2,$1,$3,$(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000)))" >>"$GCSV"
}

# g_keepers TOOL: the pids of TOOL's per-container keepers, one a line.
g_keepers() {
    local f
    if [ "$1" = hutch ]; then
        for f in "$GW/hdata/hutch/containers"/*/state.json; do
            [ -f "$f" ] || continue
            tr -d ' \n' <"$f" | grep -o '"supervisor":{"pid":[0-9]*' | grep -o '[0-9]*$' || true
        done
    else
        local ids
        ids=$(timeout 60 "${AS_USER[@]}" "${G_PENV[@]}" podman ps -q --no-trunc 2>/dev/null </dev/null) || true
        [ -z "$ids" ] || timeout 60 "${AS_USER[@]}" "${G_PENV[@]}" podman inspect --format '{{.State.ConmonPid}}' $ids 2>/dev/null </dev/null || true
    fi
}

# g_descendants PID...: every descendant of the PIDs (not the PIDs), one a line.
g_descendants() {
    ps -e -o pid=,ppid= | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) seen[r[i]] = 1 }
        { kids[$2] = kids[$2] " " $1 }
        END {
            for (i = 1; i <= n; i++) q[++qn] = r[i]
            for (h = 1; h <= qn; h++) {
                m = split(kids[q[h]], k, " ")
                for (j = 1; j <= m; j++) if (!(k[j] in seen)) { seen[k[j]] = 1; q[++qn] = k[j]; print k[j] }
            }
        }'
}

# g_extra TOOL EXCLUDE...: the user's processes running with TOOL's private
# runtime dir that are not in EXCLUDE (podman's pause process, say).
g_extra() {
    local rd pid
    rd=$([ "$1" = hutch ] && echo "$GW/hrun" || echo "$GRUN")
    shift
    for pid in $(pgrep -u "$U_UID" 2>/dev/null); do
        [[ " $* " == *" $pid "* ]] && continue
        { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=$rd" && echo "$pid"
    done
    return 0
}

# g_mem PID...: "processes PSS_KiB RSS_KiB" summed over the PIDs' smaps_rollup.
g_mem() {
    local p files=()
    for p in "$@"; do files+=("/proc/$p/smaps_rollup"); done
    [ ${#files[@]} -gt 0 ] || { echo "0 0 0"; return; }
    awk 'FNR == 1 { n++ } /^Pss:/ { pss += $2 } /^Rss:/ { rss += $2 } END { printf "%d %d %d\n", n, pss, rss }' "${files[@]}" 2>/dev/null || true
}

# g_collect TOOL: G_KEEPERS, G_CTRS (their descendants), G_OTHER, and
# G_PIDS (keepers and containers, which rm -f must end).
g_collect() {
    G_KEEPERS=$(g_keepers "$1" | sort -un | tr '\n' ' ')
    # shellcheck disable=SC2086 # lists of pids
    G_CTRS=$(g_descendants $G_KEEPERS | tr '\n' ' ')
    # shellcheck disable=SC2086
    G_OTHER=$(g_extra "$1" $G_KEEPERS $G_CTRS | tr '\n' ' ')
    G_PIDS="$G_KEEPERS $G_CTRS"
}

# g_measure TOOL ROUND LEVEL: one memory row into $GMEM.
g_measure() {
    g_collect "$1"
    # shellcheck disable=SC2086
    echo "$2,$1,$3,$(g_mem $G_KEEPERS | tr ' ' ','),$(g_mem $G_CTRS | tr ' ' ','),$(g_mem $G_OTHER | tr ' ' ',')" >>"$GMEM"
}

# g_remove TOOL ROUND N: removes containers 1..N of ROUND with one bounded
# rm -f, timed into $GRM; then waits (bounded) for $G_PIDS to be gone.
g_remove() {
    local names=() i t0 t1 rc=0 left pid
    for i in $(seq 1 "$3"); do names+=("hbg-$2-$i"); done
    t0=$EPOCHREALTIME
    if [ "$1" = hutch ]; then
        timeout 300 "${AS_USER[@]}" "${G_HENV[@]}" "$WORK/hutch" rm -f "${names[@]}" >"$GW/last.log" 2>&1 </dev/null || rc=$?
    else
        timeout 300 "${AS_USER[@]}" "${G_PENV[@]}" podman rm -f -t 0 "${names[@]}" >"$GW/last.log" 2>&1 </dev/null || rc=$?
    fi
    t1=$EPOCHREALTIME
    t0=${t0/[.,]/}
    t1=${t1/[.,]/}
    echo "$2,$1,$3,$(((t1 - t0) / 1000)),$rc" >>"$GRM"
    [ "$rc" = 0 ] || say "growth: $1 rm -f failed (exit $rc): $(last_error_in "$GW")"
    for i in $(seq 1 50); do # up to 10 s
        left=""
        for pid in $G_PIDS; do
            [ -d "/proc/$pid" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ] && left+=" $pid"
        done
        [ -n "$left" ] || break
        sleep 0.2
    done
    [ -z "$left" ] || G_LEFT+="$1 round $2: processes still alive 10 s after rm -f:$left"$'\n'
    if [ "$1" = hutch ]; then
        left=$(timeout 60 "${AS_USER[@]}" "${G_HENV[@]}" "$WORK/hutch" ps -a -q 2>/dev/null </dev/null | tr '\n' ' ') || true
    else
        left=$(timeout 60 "${AS_USER[@]}" "${G_PENV[@]}" podman ps -a -q 2>/dev/null </dev/null | tr '\n' ' ') || true
    fi
    [ -z "${left// /}" ] || G_LEFT+="$1 round $2: containers listed after rm -f: $left"$'\n'
    G_LIVE[$1]=0
}

# growth_cleanup: on any exit, removes what a failed run left (bounded).
growth_cleanup() {
    local t
    for t in hutch podman; do
        [ "${G_LIVE[$t]:-0}" = 1 ] || continue
        local ids
        if [ "$t" = hutch ]; then
            ids=$(timeout 30 "${AS_USER[@]}" "${G_HENV[@]}" "$WORK/hutch" ps -a -q 2>/dev/null </dev/null) || true
            [ -z "$ids" ] || timeout 120 "${AS_USER[@]}" "${G_HENV[@]}" "$WORK/hutch" rm -f $ids >/dev/null 2>&1 </dev/null || true
        else
            ids=$(timeout 30 "${AS_USER[@]}" "${G_PENV[@]}" podman ps -a -q 2>/dev/null </dev/null) || true
            [ -z "$ids" ] || timeout 120 "${AS_USER[@]}" "${G_PENV[@]}" podman rm -f -t 0 $ids >/dev/null 2>&1 </dev/null || true
        fi
        G_LIVE[$t]=0
    done
    [ -z "${GRUN:-}" ] || SRUN=$GRUN stop_podman_pause
    [ -z "${GRUN:-}" ] || rm -rf "$GRUN" 2>/dev/null || true
}

# g_prepare: private dirs, the busybox image loaded into hutch and podman.
# Sets G_TOOLS (the tools that can run) and G_WHY[tool] for the others.
g_prepare() {
    GW=$WORK/growth
    mkdir -p "$GW"
    chmod 0755 "$GW"
    [ "$(id -u)" -ne 0 ] || chown "$U_UID:$U_GID" "$GW"
    GRUN=$(mktemp -d /tmp/hbg.XXXXXX) # short: podman's socket paths live here
    chmod 0700 "$GRUN"
    [ "$(id -u)" -ne 0 ] || chown "$U_UID:$U_GID" "$GRUN"
    EXIT_HOOKS+=(growth_cleanup)
    G_HENV=(env "XDG_RUNTIME_DIR=$GW/hrun" "XDG_DATA_HOME=$GW/hdata" "XDG_CONFIG_HOME=$GW/hconfig")
    G_PENV=(env "XDG_RUNTIME_DIR=$GRUN" "XDG_DATA_HOME=$GW/pdata" "XDG_CONFIG_HOME=$GW/pconfig"
        "CONTAINERS_CONF=$GW/containers.conf" "CONTAINERS_STORAGE_CONF=$GW/storage.conf")
    as_user mkdir -m 0700 "$GW/hrun" "$GW/hdata" "$GW/hconfig" "$GW/pdata" "$GW/pconfig"
    local images=$OUT/images
    if [ ! -d "$images/rootfs/bin" ] || [ ! -f "$images/oci/index.json" ]; then
        say "growth: building the busybox test images once into $images"
        timeout 600 "$REPO/rootfs-tools/build-images.sh" "$images" >&2 || die "growth: rootfs-tools/build-images.sh failed"
    fi
    chmod a+rx "$images"
    G_TOOLS=()
    have skopeo || { G_WHY[hutch]="skopeo missing (needed for the image archive)"; G_WHY[podman]=${G_WHY[hutch]}; return 0; }
    timeout 120 "${AS_USER[@]}" skopeo copy -q "oci:$images/oci:latest" \
        "docker-archive:$GW/busybox.tar:bench/busybox:latest" >"$GW/last.log" 2>&1 </dev/null ||
        die "growth: skopeo copy failed: $(last_error_in "$GW")"
    if [ "${HAVE[hutch]}" != 1 ]; then
        G_WHY[hutch]="no hutch binary"
    elif ! timeout 120 "${AS_USER[@]}" "${G_HENV[@]}" "$WORK/hutch" load -i "$GW/busybox.tar" >"$GW/last.log" 2>&1 </dev/null; then
        G_WHY[hutch]="hutch load failed: $(last_error_in "$GW")"
    else
        G_TOOLS+=(hutch)
    fi
    # podman as in the start group: overlay storage and engine config in the
    # scratch dir; runc (crun refuses this kind of hybrid host); cgroupfs.
    local rt=runc
    have runc || rt=crun
    cat >"$GW/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$GRUN/containers"
graphroot = "$GW/podman"
EOF
    cat >"$GW/containers.conf" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "$rt"
EOF
    chmod 0644 "$GW/storage.conf" "$GW/containers.conf"
    if ! have podman; then
        G_WHY[podman]="podman not installed (Debian: podman)"
    elif ! timeout 120 "${AS_USER[@]}" "${G_PENV[@]}" podman load -q -i "$GW/busybox.tar" >"$GW/last.log" 2>&1 </dev/null; then
        G_WHY[podman]="podman load failed: $(last_error_in "$GW")"
    else
        G_PODMAN_IMG=$(timeout 60 "${AS_USER[@]}" "${G_PENV[@]}" podman images -q --no-trunc 2>/dev/null </dev/null | awk 'NR == 1') || true
        if [ -z "$G_PODMAN_IMG" ]; then
            G_WHY[podman]="podman load left no image"
        else
            G_TOOLS+=(podman)
        fi
    fi
    # A probe of each, not recorded: also the warm-up (page cache, stores,
    # podman's pause process).
    local t
    for t in "${G_TOOLS[@]}"; do
        if ! g_start "$t" 0 1; then
            G_WHY[$t]="$t run -d failed: $(last_error_in "$GW")"
        else
            g_collect "$t"
            g_remove "$t" 0 1
        fi
    done
    G_TOOLS=()
    for t in hutch podman; do
        if [ -n "${G_WHY[$t]:-}" ]; then say "growth: $t unavailable: ${G_WHY[$t]}"; else G_TOOLS+=("$t"); fi
    done
    sed -i '/^0,/d' "$GCSV" "$GRM"
    G_LEFT=""
}

# g_round TOOL ROUND: grows TOOL's containers through the levels, measuring
# at each, then removes them all.
g_round() {
    local n=0 level
    for level in "${G_LEVELS[@]}"; do
        while [ "$n" -lt "$level" ]; do
            n=$((n + 1))
            if ! g_start "$1" "$2" "$n"; then
                say "growth: $1 run -d failed at container $n of round $2: $(last_error_in "$GW")"
                G_FAILS+="$1 round $2: run -d failed at container $n: $(last_error_in "$GW")"$'\n'
                g_collect "$1" # the pids g_remove checks
                g_remove "$1" "$2" "$n"
                return 0
            fi
        done
        sleep 1 # let the last container settle before reading memory
        g_measure "$1" "$2" "$level"
    done
    g_remove "$1" "$2" "$n"
}

bench_growth() {
    declare -gA G_WHY=() G_LIVE=()
    G_FAILS=""
    G_PULL_WHY=""
    if [ "$QUICK" = 1 ]; then
        G_LEVELS=(1 5 10)
        G_ROUNDS=${REPS:-1}
        G_SIZES=(1 4 16)
        G_PULL_REPS=${REPS:-1}
    else
        G_LEVELS=(1 10 50)
        G_ROUNDS=${REPS:-2}
        G_SIZES=(4 16 64)
        G_PULL_REPS=${REPS:-2}
    fi
    g_prepare_files
    g_prepare
    local round k t n=${#G_TOOLS[@]}
    say "growth ($MODE): $G_ROUNDS rounds of (${G_TOOLS[*]}) run -d up to ${G_LEVELS[*]} containers, tools alternating"
    for round in $(seq 1 "$G_ROUNDS"); do
        for k in $(seq 0 $((n - 1))); do
            t=${G_TOOLS[$(((k + round) % n))]}
            g_round "$t" "$round"
            say "growth: round $round/$G_ROUNDS of $t done"
        done
    done
    [ -z "${GRUN:-}" ] || SRUN=$GRUN stop_podman_pause
    if [ "$(id -u)" -ne 0 ] && have podman; then
        timeout 120 "${AS_USER[@]}" "${G_PENV[@]}" podman unshare rm -rf "$GW/podman" "$GW/pdata" >/dev/null 2>&1 </dev/null || true
        SRUN=$GRUN stop_podman_pause
    fi
    g_pull_sizes
    g_report
}

# g_prepare_files: the CSV files of this group.
g_prepare_files() {
    mkdir -p "$WORK/growth"
    GCSV=$WORK/growth/start.csv
    GMEM=$WORK/growth/mem.csv
    GRM=$WORK/growth/rm.csv
    GPULL=$WORK/growth/pull.csv
    echo "round,tool,n,ms" >"$GCSV"
    echo "round,tool,n,keepers,keeper_pss_kib,keeper_rss_kib,ctr_procs,ctr_pss_kib,ctr_rss_kib,other_procs,other_pss_kib,other_rss_kib" >"$GMEM"
    echo "round,tool,n,ms,exit" >"$GRM"
    echo "mib,gzip_bytes,tar_bytes,rep,tool,step,seconds" >"$GPULL"
}

# g_pull_sizes: hutch against skopeo+umoci for each layer budget in G_SIZES.
g_pull_sizes() {
    local t mib rep k s suites=()
    for t in gzip tar sha256sum skopeo docker-registry; do
        [ "${HAVE[$t]}" = 1 ] || { G_PULL_WHY="$t missing"; say "growth: pull sizes skipped: $t missing"; return 0; }
    done
    [ "${HAVE[hutch]}" = 1 ] && suites+=(hutch)
    [ "${HAVE[umoci]}" = 1 ] && suites+=(skopeo_umoci)
    [ ${#suites[@]} -gt 0 ] || { G_PULL_WHY="neither hutch nor umoci"; return 0; }
    pull_registry
    local keep_csv=${CSV:-} keep_bytes=$LAYER_BYTES
    CSV=$WORK/growth/pull-one.csv
    for mib in "${G_SIZES[@]}"; do
        LAYER_BYTES=$((mib * 1024 * 1024))
        IMG=$OUT/image-growth-${mib}m
        # The pull group's image of this mode has the same budget: reuse it.
        [ "$LAYER_BYTES" != "$keep_bytes" ] || [ ! -f "$OUT/image-$MODE-${mib}m/index.json" ] || IMG=$OUT/image-$MODE-${mib}m
        [ -f "$IMG/index.json" ] || build_image
        pull_layers
        pull_push "g${mib}m"
        echo "rep,tool,step,seconds" >"$CSV"
        say "growth: pull, $mib MiB per layer: $G_PULL_REPS repetitions of (${suites[*]}), interleaved"
        # Warm-up, not recorded: page cache and registry.
        if [ "${suites[0]}" = hutch ]; then run_hutch 0; else run_skopeo_umoci 0; fi
        for rep in $(seq 1 "$G_PULL_REPS"); do
            for k in $(seq 0 $((${#suites[@]} - 1))); do
                s=${suites[$(((k + rep) % ${#suites[@]}))]}
                case $s in
                hutch) run_hutch "$rep" ;;
                skopeo_umoci) run_skopeo_umoci "$rep" ;;
                esac
            done
        done
        awk -F, -v m="$mib" -v g="$GZ_BYTES" -v r="$RAW_BYTES" 'NR > 1 && $1 != 0 { print m "," g "," r "," $0 }' "$CSV" >>"$GPULL"
        fresh
    done
    CSV=$keep_csv
    LAYER_BYTES=$keep_bytes
}

# g_report: the tables on stdout and results-growth-MODE-STAMP.{txt,json},
# plus the raw samples as .start.csv, .mem.csv, .rm.csv and .pull.csv.
g_report() {
    local stamp res vers why="" t
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    res=$OUT/results-growth-$MODE-$stamp
    cp "$GCSV" "$res.start.csv"
    cp "$GMEM" "$res.mem.csv"
    cp "$GRM" "$res.rm.csv"
    cp "$GPULL" "$res.pull.csv"
    for t in hutch podman; do [ -z "${G_WHY[$t]:-}" ] || why+="$t	${G_WHY[$t]}"$'\n'; done
    vers="hutch $HUTCH_VER"
    have podman && vers+=", podman $(podman --version | awk '{ print $3 }'), conmon $(conmon --version 2>/dev/null | awk 'NR == 1 { print $3 }')"
    have skopeo && vers+=", skopeo $(skopeo --version | awk '{ print $3 }')"
    have umoci && vers+=", umoci $(umoci --version | awk '{ print $3 }')"
    awk -F, -v mode="$MODE" -v machine="$MACHINE" -v vers="$vers" -v levels="${G_LEVELS[*]}" \
        -v rounds="$G_ROUNDS" -v preps="$G_PULL_REPS" -v why="$why" -v left="$G_LEFT" -v fails="$G_FAILS" \
        -v pullwhy="$G_PULL_WHY" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" -v json="$res.json" -v commit="$HUTCH_VER" \
        -f "$HERE/growth-report.awk" "$GCSV" "$GMEM" "$GRM" "$GPULL" | tee "$res.txt"
    say "wrote $res.txt $res.json and the samples as $res.*.csv"
}
