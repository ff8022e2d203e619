# shellcheck shell=bash
# bench/net.sh: the net group of bench/hutch-bench, which sources it (it
# uses that script's helpers and settings: AS_USER, WORK, OUT, HAVE, say,
# NET_REPS, NET_SECS, ...). Not meant to be run alone.
#
# TCP throughput with iperf3 (one stream, -t NET_SECS), in both directions:
#   c2h  container -> host: `iperf3 -s -1` on the host's 127.0.0.1; the
#        client in the container reaches it through the backend's address
#        for the host's loopback (pasta with allow_host_loopback: the default
#        gateway; slirp4netns: 10.0.2.2; host networking: 127.0.0.1).
#   h2c  host -> container: `iperf3 -s -1` in the container, published with
#        -p 127.0.0.1:P:5201 (iperf3's control and data share one port),
#        the client on the host.
# Rows: hutch and rootless podman with host, pasta and slirp4netns
# networking, and two references without a container tool: iperf3 over the
# host's loopback, and pasta alone (`pasta --config-net -- iperf3 ...`).
# Podman's slirp4netns row publishes ports as hutch does, through
# slirp4netns itself (port_handler=slirp4netns); one more row has podman's
# default, rootlesskit's port forwarder.
# Each figure is the client's "receiver" line: what the server received.
# Everything runs as the unprivileged user; every step is bounded.

#   id|tool|network
NET_ROWS=(
    "bare_host|no container|host"
    "bare_pasta|no container|pasta"
    "hutch_host|hutch|host"
    "hutch_pasta|hutch|pasta"
    "hutch_slirp|hutch|slirp4netns"
    "podman_host|podman|host"
    "podman_pasta|podman|pasta"
    "podman_slirp|podman|slirp4netns"
    "podman_rlkit|podman|slirp4netns, rootlesskit"
)
NET_START_TIMEOUT=60 # seconds for a container to start and its server to listen
declare -A NET_UNAVAIL # "ROW DIR" -> why that cell has no numbers
PODMAN_EXTRA=()        # podman run flags the probe found necessary

# The server side of h2c, run by /bin/sh in the container (busybox) or on
# the host (bare rows): iperf3 -s -1 on port $1, "hutch-bench-ready" once
# it listens (seen in this network namespace's /proc/net/tcp*), then wait.
# It ends iperf3 on TERM (as pid 1, sh would otherwise ignore TERM).
# shellcheck disable=SC2016 # expanded by the inner shell
NET_SERVE='p=$1; /usr/bin/iperf3 -s -1 -p "$p" & s=$!; trap "kill $s; exit 143" TERM
h=$(printf %04X "$p"); i=0
until grep -q ":$h [0-9A-F]*:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null; do
    i=$((i + 1)); if [ $i -gt 1000 ] || ! kill -0 $s 2>/dev/null; then kill $s 2>/dev/null; exit 124; fi
    sleep 0.01
done
echo hutch-bench-ready; wait $s'

# net_rootfs TOOL: a copy of the busybox rootfs plus /usr/bin/iperf3, the
# shared libraries ldd lists and the dynamic loader, owned by the user
# (the container's root); one per tool, so neither sees the other's files.
net_rootfs() {
    local r=$NW/rootfs-$1 lib
    cp -a "$ROOTFS" "$r"
    cp -L /usr/bin/iperf3 "$r/usr/bin/iperf3"
    for lib in $(ldd /usr/bin/iperf3 | grep -o '/[^ ]*'); do
        mkdir -p "$r$(dirname "$lib")"
        cp -L "$lib" "$r$lib"
    done
    mkdir -p "$r/tmp"
    chmod 1777 "$r/tmp" # iperf3 keeps its send buffer in a file there
    [ "$(id -u)" -ne 0 ] || chown -R "$U_UID:$U_GID" "$r"
}

# net_gateway: the host's IPv4 default gateway, which pasta copies into the
# container and maps to the host's loopback (allow_host_loopback).
net_gateway() {
    local h
    h=$(awk 'NR > 1 && $2 == "00000000" { print $3; exit }' /proc/net/route)
    [[ $h =~ ^[0-9A-Fa-f]{8}$ ]] || return 1
    printf '%d.%d.%d.%d' "0x${h:6:2}" "0x${h:4:2}" "0x${h:2:2}" "0x${h:0:2}"
}

# net_port: sets NPORT to a random TCP port that no socket on the host uses.
net_port() {
    local h
    for _ in $(seq 1 50); do
        NPORT=$((20000 + RANDOM % 20000))
        h=$(printf '%04X' "$NPORT")
        grep -q ":$h " /proc/net/tcp /proc/net/tcp6 2>/dev/null || return 0
    done
    return 1
}

# net_wrap ROW PUB CMD...: sets CMD to the argv that runs CMD in ROW's
# container (as the user), with host port PUB published to port 5201 when
# PUB is set and the row has a network namespace of its own.
net_wrap() {
    local row=$1 pub=$2 net=host p=() t=none
    shift 2
    case $row in
    hutch_pasta) net=pasta:allow_host_loopback=true ;;
    podman_pasta) net=pasta ;; # podman's pasta maps the gateway to the host's loopback by default
    hutch_slirp) net=slirp4netns:allow_host_loopback=true ;;
    podman_slirp) net=slirp4netns:allow_host_loopback=true,port_handler=slirp4netns ;;
    podman_rlkit) net=slirp4netns:allow_host_loopback=true ;; # port_handler=rootlesskit, the default
    esac
    if [ -n "$pub" ] && [[ $row != *_host ]]; then
        p=(-p "127.0.0.1:$pub:5201")
        t=127.0.0.1/$pub:5201
    fi
    case $row in
    bare_host) CMD=("${NU[@]}" "$@") ;;
    bare_pasta) CMD=("${NU[@]}" pasta --config-net --quiet -t "$t" -u none -T none -U none --mtu 65520 -- "$@") ;;
    hutch_*) CMD=("${NU[@]}" "$WORK/hutch" run --rm --network "$net" "${p[@]}" --rootfs "$NW/rootfs-hutch" "$@") ;;
    podman_*) CMD=("${NU[@]}" podman run --rm --network "$net" "${p[@]}" "${PODMAN_EXTRA[@]}"
        --rootfs "$NW/rootfs-podman" "$@") ;;
    esac
}

# net_last FILE: the last non-empty line of FILE, shortened.
net_last() { grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -1 | cut -c1-160; }

# net_bg SECS FILE CMD...: CMD in the background (bounded by SECS, then TERM,
# then KILL 5 s later), output to FILE; its pid in BGCHILD.
net_bg() {
    local secs=$1 file=$2
    shift 2
    timeout -k 5 "$secs" "$@" >"$file" 2>&1 </dev/null &
    BGCHILD=$!
}

# net_bg_end [stop]: waits for the background side (bounded by its own
# timeout); with "stop", ends it first. Returns its exit status.
net_bg_end() {
    local rc=0
    [ -n "$BGCHILD" ] || return 0
    [ "${1:-}" != stop ] || kill -TERM "$BGCHILD" 2>/dev/null || true
    wait "$BGCHILD" || rc=$?
    BGCHILD=""
    return "$rc"
}

# net_fg SECS FILE CMD...: CMD in the foreground, bounded, output to FILE.
# In the background and waited for, so that a signal reaches our trap.
net_fg() {
    local secs=$1 file=$2 rc=0
    shift 2
    timeout -k 5 "$secs" "$@" >"$file" 2>&1 </dev/null &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

# net_wait_for WHAT: polls (up to NET_START_TIMEOUT s) until WHAT is true:
# "listen PORT" (a socket listening on the host's 127.0.0.1:PORT) or
# "ready FILE" (the h2c server printed its line into FILE). Fails early
# when the background side has ended.
net_wait_for() {
    local h
    [ "$1" != listen ] || h="0100007F:$(printf '%04X' "$2") 00000000:0000 0A"
    for _ in $(seq 1 $((NET_START_TIMEOUT * 50))); do
        if [ "$1" = listen ]; then
            grep -q "$h" /proc/net/tcp && return 0
        else
            grep -q '^hutch-bench-ready' "$2" 2>/dev/null && return 0
        fi
        kill -0 "$BGCHILD" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}

# net_sample REP ROW DIR SECS: one bounded measurement; appends
# "REP,ROW,DIR,Mbit/s" to $NCSV. On failure returns 1 with the reason in NERR.
net_sample() {
    local rep=$1 row=$2 dir=$3 secs=$4 rc=0 inside=5201 v log=$NW/client.log
    NERR=""
    net_port || { NERR="no free port found"; return 1; }
    if [ "$dir" = c2h ]; then
        net_bg $((secs + 30)) "$NW/server.log" "${NU[@]}" /usr/bin/iperf3 -s -1 -B 127.0.0.1 -p "$NPORT"
        if ! net_wait_for listen "$NPORT"; then
            net_bg_end stop || true
            NERR="the iperf3 server on the host did not listen: $(net_last "$NW/server.log")"
            return 1
        fi
        net_wrap "$row" "" /usr/bin/iperf3 -c "$(net_host_addr "$row")" -p "$NPORT" -t "$secs" -f m
        net_fg $((secs + NET_START_TIMEOUT)) "$log" "${CMD[@]}" || rc=$?
    else
        [[ $row != *_host ]] || inside=$NPORT
        net_wrap "$row" "$NPORT" /bin/sh -c "$NET_SERVE" sh "$inside"
        net_bg $((secs + NET_START_TIMEOUT + 30)) "$NW/server.log" "${CMD[@]}"
        if ! net_wait_for ready "$NW/server.log"; then
            net_bg_end stop || true
            NERR="the server in the container did not start: $(net_last "$NW/server.log")"
            return 1
        fi
        net_fg $((secs + 30)) "$log" "${NU[@]}" /usr/bin/iperf3 -c 127.0.0.1 -p "$NPORT" -t "$secs" -f m || rc=$?
    fi
    if [ "$rc" = 0 ]; then net_bg_end || true; else net_bg_end stop || true; fi
    v=$(awk '/receiver/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) } END { print v }' "$log")
    if [ "$rc" != 0 ] || [ -z "$v" ]; then
        NERR="$(net_last "$log") (exit $rc)"
        [ "$dir" = c2h ] || [ "$rc" = 0 ] || NERR="$(net_last "$NW/server.log"); client: $NERR"
        return 1
    fi
    echo "$rep,$row,$dir,$v" >>"$NCSV"
}

# net_host_addr ROW: where the container finds the host's loopback.
net_host_addr() {
    case $1 in
    *_host) echo 127.0.0.1 ;;
    *_pasta) echo "$NGW" ;;
    *_slirp | *_rlkit) echo 10.0.2.2 ;;
    esac
}

# net_prepare ROW: marks the cells of ROW that cannot run (NET_UNAVAIL),
# then probes each of its cells once with a 1 s run, unrecorded (probe and
# warm-up: page cache, podman's pause process).
net_prepare() {
    local row=$1 d why=""
    case $row in
    *_pasta)
        have pasta || why="pasta not installed (Debian: passt)"
        [ -n "$why" ] || [ -n "$NGW" ] || why="the host has no IPv4 default route, which pasta copies"
        ;;
    *_slirp | *_rlkit) have slirp4netns || why="slirp4netns not installed (Debian: slirp4netns)" ;;
    esac
    case $row in
    hutch_*) [ "${HAVE[hutch]}" = 1 ] || why="no hutch binary" ;;
    podman_*) have podman || why="podman not installed (Debian: podman)" ;;
    esac
    for d in c2h h2c; do
        if [ -n "$why" ]; then
            NET_UNAVAIL["$row $d"]=$why
            continue
        fi
        net_sample 0 "$row" "$d" 1 && continue
        # Rootless podman on a host without a usable cgroup: try once
        # without cgroups, as the start group's notes suggest.
        if [[ $row == podman_* && ${#PODMAN_EXTRA[@]} = 0 && $NERR == *cgroup* ]]; then
            PODMAN_EXTRA=(--cgroups=disabled)
            net_sample 0 "$row" "$d" 1 && continue
            PODMAN_EXTRA=()
        fi
        NET_UNAVAIL["$row $d"]=$NERR
        if [ "$row" = podman_pasta ] && [[ $NERR == *"network not found"* ]]; then
            NET_UNAVAIL["$row $d"]="podman $(podman --version | awk '{ print $3 }') has no pasta network (podman 4.4 added it): \"$(grep -h -m1 '^Error:' "$NW/client.log" "$NW/server.log" 2>/dev/null | head -1)\""
        fi
    done
}

bench_net() {
    local row id d rep k n r c stamp res unavail="" fails="" vers
    if ! have iperf3; then
        say "net: iperf3 not installed (Debian: iperf3): the net group is skipped"
        return 0
    fi
    NW=$WORK/net
    NCSV=$NW/samples.csv
    user_dir "$NW"
    short_run_dir
    ensure_images net
    as_user mkdir -m 0700 "$SRUN/net" "$NW/data" "$NW/config"
    # Private XDG dirs and podman's config; the runtime dir under the short
    # $SRUN. Each measured command in a session of its own: with the
    # kernel's autogroup scheduling a session is a scheduling group, and
    # containers get one anyway (hutch's and podman's start a session), so
    # under other load a bare iperf3 would otherwise get a smaller share.
    local sess=()
    have setsid && sess=(setsid -w)
    NU=("${sess[@]}" "${AS_USER[@]}" env "XDG_RUNTIME_DIR=$SRUN/net" "XDG_DATA_HOME=$NW/data" "XDG_CONFIG_HOME=$NW/config"
        "CONTAINERS_CONF=$NW/containers.conf" "CONTAINERS_STORAGE_CONF=$NW/storage.conf")
    NGW=$(net_gateway) || NGW=""
    [ "${HAVE[hutch]}" = 1 ] && net_rootfs hutch
    if have podman; then
        podman_conf "$NW" "$SRUN/net"
        net_rootfs podman
    fi

    echo "rep,row,dir,mbps" >"$NCSV"
    local cells=()
    for row in "${NET_ROWS[@]}"; do
        id=${row%%|*}
        net_prepare "$id"
        for d in c2h h2c; do
            if [ -n "${NET_UNAVAIL["$id $d"]:-}" ]; then
                say "net: $id $d unavailable: ${NET_UNAVAIL["$id $d"]}"
            else
                cells+=("$id $d")
            fi
        done
    done
    local first=1
    if [ "$NET_PROBE_SAMPLE" = 1 ]; then
        # Quick mode: the probe (1 s, as NET_SECS) is the one sample, unwarmed.
        sed -i 's/^0,/1,/' "$NCSV"
        first=2
        say "net ($MODE): ${#cells[@]} cells, each measured once by its probe run (iperf3 -t 1), not warmed up"
    else
        sed -i '/^0,/d' "$NCSV"
        # shellcheck disable=SC2153 # NET_REPS is set by bench/hutch-bench
        say "net ($MODE): $NET_REPS repetitions of ${#cells[@]} cells (iperf3 -t $NET_SECS), interleaved, each probed once first"
    fi
    declare -A NFAILS
    n=${#cells[@]}
    for rep in $(seq "$first" "$NET_REPS"); do
        for k in $(seq 0 $((n - 1))); do
            c=${cells[$(((k + rep) % n))]} # rotate the order each repetition
            read -r r d <<<"$c"
            if ! net_sample "$rep" "$r" "$d" "$NET_SECS"; then
                NFAILS[$c]=$((${NFAILS[$c]:-0} + 1))
                say "net: $c failed in repetition $rep: $NERR"
            fi
        done
        say "net: repetition $rep/$NET_REPS done"
    done
    stop_podman_pause
    if [ "$(id -u)" -ne 0 ] && have podman; then
        # podman's storage may hold files of the user's subordinate ids.
        timeout 120 "${NU[@]}" podman unshare rm -rf "$NW/podman" >/dev/null 2>&1 </dev/null || true
        stop_podman_pause
    fi

    # ------------------------------------------------------------ report
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    res=$OUT/results-net-$MODE-$stamp
    cp "$NCSV" "$res.csv"
    for row in "${NET_ROWS[@]}"; do
        for d in c2h h2c; do
            c="${row%%|*} $d"
            [ -z "${NET_UNAVAIL[$c]:-}" ] || unavail+="$c	${NET_UNAVAIL[$c]}"$'\n'
            [ -z "${NFAILS[$c]:-}" ] || fails+="$c	${NFAILS[$c]}"$'\n'
        done
    done
    vers="hutch $HUTCH_VER, $(iperf3 --version | awk 'NR == 1 { print $1 "3 " $2 }')"
    have pasta && vers+=", passt $(dpkg-query -W -f '${Version}' passt 2>/dev/null || echo '?')"
    have slirp4netns && vers+=", slirp4netns $(slirp4netns --version | awk 'NR == 1 { print $3 }')"
    have podman && vers+=", podman $(podman --version | awk '{ print $3 }')${PODMAN_EXTRA[*]:+ (${PODMAN_EXTRA[*]})}"
    net_report "$res" "$vers" "$unavail" "$fails" <"$NCSV" | tee "$res.txt"
    say "wrote $res.csv $res.json $res.txt"
}

# net_report RES VERSIONS UNAVAIL FAILS <CSV: the table on stdout, the JSON
# into RES.json. Gbit/s; "x host" is a cell's median over the median of the
# same tool's host-network row in the same direction.
net_report() {
    awk -F, -v mode="$MODE" -v reps="$NET_REPS" -v secs="$NET_SECS" -v machine="$MACHINE" -v vers="$2" -v probe_sample="$NET_PROBE_SAMPLE" \
        -v rows="$(printf '%s\n' "${NET_ROWS[@]}")" -v unavail="$3" -v fails="$4" \
        -v json="$1.json" -v commit="$HUTCH_VER" '
function sorted(key,   n, i, j, t) {
    n = cnt[key]
    for (i = 1; i <= n; i++) a[i] = v[key, i]
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n
}
function median(key,   n) { n = sorted(key); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function jstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
function hostrow(id,   t) { t = id; sub(/_.*/, "", t); return t "_host" }
# cmp A B LABEL [NOAIM]: A / B in both directions, of the medians and of
# the best runs; the best runs against the aim unless NOAIM says why not.
function cmp(x, y, label, noaim,   d, k, r, b, dn) {
    for (d = 1; d <= 2; d++) {
        dn = dirs[d]
        if (((x " " dn) in med) && ((y " " dn) in med)) {
            r = med[x " " dn] / med[y " " dn]
            b = mx[x " " dn] / mx[y " " dn]
            if (noaim != "") {
                printf "%-34s %-16s %7.3f %7.3f   (%s)\n", label, dname[dn], r, b, noaim
            } else {
                ncmp++; if (b >= aim) nmet++
                printf "%-34s %-16s %7.3f %7.3f   %s\n", label, dname[dn], r, b, (b >= aim ? "MET" : "MISSED")
            }
            rj = rj sprintf(",\"%s_over_%s_%s\":{\"median\":%.3f,\"best\":%.3f}", x, y, dn, r, b)
        } else {
            k = ((x " " dn) in why) ? x " " dn : y " " dn
            printf "%-34s %-16s not measured (%s)\n", label, dname[dn], (k in why) ? "unavailable: " tool[substr(k, 1, index(k, " ") - 1)] " " net[substr(k, 1, index(k, " ") - 1)] : "failed"
        }
    }
}
NR > 1 {
    k = $2 " " $3
    cnt[k]++; v[k, cnt[k]] = $4 / 1000
    if (!(k in mn) || $4 / 1000 < mn[k]) mn[k] = $4 / 1000
    if (!(k in mx) || $4 / 1000 > mx[k]) mx[k] = $4 / 1000
}
END {
    aim = 0.90
    dirs[1] = "c2h"; dirs[2] = "h2c"
    dname["c2h"] = "container->host"; dname["h2c"] = "host->container"
    nr = split(rows, rl, "\n")
    nu = split(unavail, ul, "\n"); for (i = 1; i <= nu; i++) if (ul[i] != "") { split(ul[i], f, "\t"); why[f[1]] = f[2] }
    nf = split(fails, fl, "\n"); for (i = 1; i <= nf; i++) if (fl[i] != "") { split(fl[i], f, "\t"); nfail[f[1]] = f[2] }
    for (k in cnt) med[k] = median(k)
    for (i = 1; i <= nr; i++) { split(rl[i], f, "|"); id[i] = f[1]; tool[f[1]] = f[2]; net[f[1]] = f[3] }
    printf "\nhutch-bench net (%s mode): TCP throughput in Gbit/s, one iperf3 stream of %d s, loopback only;\n", mode, secs
    if (probe_sample) printf "one run per cell, its unwarmed probe (quick mode); x host = the value / the same tool'"'"'s host-network value\n"
    else printf "%d interleaved repetitions, each cell probed once first; x host = median / the same tool'"'"'s host-network median\n", reps
    printf "machine: %s\n%s\n\n", machine, vers
    printf "%-12s %-24s | %-30s | %-30s\n", "", "", "container -> host", "host -> container (-p)"
    printf "%-12s %-24s | %6s %6s %6s %8s | %6s %6s %6s %8s\n", "tool", "network", "median", "min", "max", "x host", "median", "min", "max", "x host"
    js = ""
    for (i = 1; i <= nr; i++) {
        r = id[i]
        line = sprintf("%-12s %-24s", tool[r], net[r])
        for (d = 1; d <= 2; d++) {
            k = r " " dirs[d]; h = hostrow(r) " " dirs[d]
            if (k in med) {
                x = (h in med) ? sprintf("%.2f", med[k] / med[h]) : "-"
                line = line sprintf(" | %6.2f %6.2f %6.2f %8s", med[k], mn[k], mx[k], x)
                js = js sprintf("%s{\"row\":\"%s\",\"tool\":%s,\"network\":\"%s\",\"direction\":\"%s\",\"median_gbps\":%.3f,\"min_gbps\":%.3f,\"max_gbps\":%.3f,\"n\":%d,\"failed\":%d%s}", \
                    js == "" ? "" : ",", r, jstr(tool[r]), net[r], dirs[d], med[k], mn[k], mx[k], cnt[k], nfail[k] + 0, \
                    (h in med) ? sprintf(",\"x_host\":%.3f", med[k] / med[h]) : "")
            } else {
                line = line sprintf(" | %-30s", (k in why) ? "unavailable *" : "all runs failed")
                if (k in why) js = js sprintf("%s{\"row\":\"%s\",\"tool\":%s,\"network\":\"%s\",\"direction\":\"%s\",\"unavailable\":%s}", \
                    js == "" ? "" : ",", r, jstr(tool[r]), net[r], dirs[d], jstr(why[k]))
            }
            if ((k in nfail) && nfail[k] > 0) line = line sprintf(" (%d failed)", nfail[k])
        }
        print line
    }
    printf "\nno container/host: iperf3 client and server both on the host'"'"'s loopback (the ceiling)\n"
    printf "no container/pasta: pasta --config-net [-t 127.0.0.1/P:5201] -- iperf3 ... (the backend alone)\n"
    printf "container->host reaches the host'"'"'s 127.0.0.1 through: pasta: the gateway (allow_host_loopback);\n"
    printf "slirp4netns: 10.0.2.2 (allow_host_loopback=true); host networking: 127.0.0.1\n"
    printf "-p: pasta and hutch'"'"'s slirp4netns forward in the helper; podman slirp4netns with port_handler=slirp4netns\n"
    printf "(like hutch); podman slirp4netns, rootlesskit: podman'"'"'s default -p, rootlesskit'"'"'s userspace proxy\n"
    for (i = 1; i <= nr; i++) for (d = 1; d <= 2; d++) {
        k = id[i] " " dirs[d]
        if (!(k in why)) continue
        if (d == 2 && ((id[i] " c2h") in why) && why[id[i] " c2h"] == why[k]) continue
        printf "* %s %s%s: %s\n", tool[id[i]], net[id[i]], (d == 1 && ((id[i] " h2c") in why) && why[id[i] " h2c"] == why[k]) ? "" : " " dname[dirs[d]], why[k]
    }
    printf "\nratios of the medians, and of the best runs (noise from other load only slows a run down, so the best\n"
    printf "run is the least disturbed one); the aim, that hutch adds nothing measurable on top of the backend\n"
    printf "it drives, is judged on the best runs: best ratio >= %.2f\n\n", aim
    printf "%-34s %-16s %7s %7s   %s\n", "ratio", "direction", "median", "best", "aim"
    rj = ""
    cmp("hutch_host", "podman_host", "hutch / podman, host")
    cmp("hutch_pasta", "podman_pasta", "hutch / podman, pasta")
    cmp("hutch_slirp", "podman_slirp", "hutch / podman, slirp4netns")
    cmp("hutch_slirp", "podman_rlkit", "hutch / podman, slirp4netns+rlkit", "podman forwards -p with rootlesskit: no aim")
    cmp("hutch_pasta", "bare_pasta", "hutch / pasta alone")
    cmp("hutch_host", "bare_host", "hutch host / no container")
    if (ncmp > 0) printf "\naim (hutch adds nothing measurable on top of the backend it drives; best ratio >= %.2f): %s, %d of %d\n", \
        aim, (nmet == ncmp ? "MET" : "MISSED"), nmet, ncmp
    printf "{\"benchmark\":\"net\",\"mode\":\"%s\",\"repetitions\":%d,\"seconds\":%d,\"machine\":%s,\"versions\":%s,\"hutch_commit\":\"%s\",\"results\":[%s]%s}\n", \
        mode, reps, secs, jstr(machine), jstr(vers), commit, js, rj > json
}'
}
