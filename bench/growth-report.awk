# bench/growth-report.awk: the growth group's report (bench/growth.sh runs
# it). Input files, in order: start.csv (round,tool,n,ms), mem.csv (round,
# tool,n,keepers,keeper_pss_kib,keeper_rss_kib,ctr_procs,ctr_pss_kib,
# ctr_rss_kib,other_procs,other_pss_kib,other_rss_kib), rm.csv (round,tool,
# n,ms,exit), pull.csv (mib,gzip_bytes,tar_bytes,rep,tool,step,seconds).
# Writes the tables to stdout and the medians to the file `json`.

function median(key,   n, i, j, t) {
    n = cnt[key]
    for (i = 1; i <= n; i++) a[i] = v[key, i]
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(key, x) {
    cnt[key]++; v[key, cnt[key]] = x
    if (!(key in mn) || x + 0 < mn[key]) mn[key] = x + 0
    if (!(key in mx) || x + 0 > mx[key]) mx[key] = x + 0
}
function jstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, " ", s); gsub(/\n/, "; ", s); return "\"" s "\"" }
function mib(kib) { return kib / 1024 }
FNR == 1 { f++; next }
# start latency: each sample goes to the band of levels it falls in
f == 1 {
    for (b = 1; b <= nl; b++) if ($3 + 0 <= lv[b]) break
    if (b <= nl) add("s," $2 "," b, $4)
}
f == 2 {
    k = $2 "," $3
    add("kp," k, $5); add("kr," k, $6); add("cp," k, $8); add("cr," k, $9); add("op," k, $11); add("or," k, $12)
    add("kn," k, $4); add("cn," k, $7); add("on," k, $10)
    add("kpc," k, $5 / ($4 > 0 ? $4 : 1)); add("krc," k, $6 / ($4 > 0 ? $4 : 1))
    add("tp," k, $5 + $8 + $11)
}
f == 3 { add("rm," $2 "," $3, $4); if ($5 != 0) rmfail[$2]++ }
f == 4 {
    if (!($1 in gz)) { sizes[++ns] = $1; gz[$1] = $2; raw[$1] = $3 }
    add("p," $1 "," $5 "," $6, $7)
}
BEGIN {
    nl = split(levels, lv, " ")
    nw = split(why, wl, "\n"); for (i = 1; i <= nw; i++) if (wl[i] != "") { split(wl[i], x, "\t"); unav[x[1]] = x[2] }
    tools[1] = "hutch"; tools[2] = "podman"
    keeper["hutch"] = "supervisor"; keeper["podman"] = "conmon"
}
END {
    top = lv[nl]
    printf "\nhutch-bench growth (%s mode): detached containers running sleep, started one at a time with\n", mode
    printf "run -d --network none until %s run at once; %d round(s), the tools alternating\n", levels_json(), rounds
    printf "(one tool at a time: the other tool's containers are all removed first); memory from /proc/PID/smaps_rollup\n"
    printf "machine: %s; load average %s at the end of the group\n%s\n", machine, load, vers
    for (i = 1; i <= 2; i++) if (tools[i] in unav) printf "%-7s unavailable: %s\n", tools[i], unav[tools[i]]

    printf "\nstart latency of run -d, ms: median (min-max) of the starts that brought the count into each band\n"
    printf "%-16s", "tool"
    for (b = 1; b <= nl; b++) { lo = (b == 1 ? 1 : lv[b - 1] + 1); band[b] = (lo == lv[b] ? "n=" lv[b] : "n=" lo ".." lv[b]); printf " %22s", band[b] }
    printf "\n"
    js = ""
    for (i = 1; i <= 2; i++) {
        t = tools[i]; if (!(("s," t ",1") in cnt)) continue
        printf "%-16s", t
        for (b = 1; b <= nl; b++) {
            k = "s," t "," b
            if (k in cnt) {
                sm[t, b] = median(k)
                printf " %22s", sprintf("%.1f (%.1f-%.1f)", sm[t, b], mn[k], mx[k])
                js = js sprintf("%s{\"tool\":\"%s\",\"band\":\"%s\",\"to\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f,\"n\":%d}", js == "" ? "" : ",", t, band[b], lv[b], sm[t, b], mn[k], mx[k], cnt[k])
            } else printf " %22s", "-"
        }
        printf "\n"
    }
    if ((("s,hutch,1") in cnt) && (("s,podman,1") in cnt)) {
        printf "%-16s", "podman / hutch"
        for (b = 1; b <= nl; b++) printf " %22s", ((("hutch", b) in sm) && (("podman", b) in sm)) ? sprintf("%.2f", sm["podman", b] / sm["hutch", b]) : "-"
        printf "\n"
    }

    printf "\nmemory in use, KiB (median over rounds; PSS shares each page among the processes that map it):\n"
    printf "keepers: hutch's supervisors or podman's conmons; containers: their descendants (sleep); other: the rest of\n"
    printf "the tool's processes (podman's pause process); per container: keepers / count\n"
    printf "%-7s %4s %9s %9s %10s %10s %9s %9s %10s %11s %11s\n", "tool", "n", "keep PSS", "keep RSS", "ctrs PSS", "ctrs RSS", "other PSS", "other RSS", "total PSS", "keep PSS/c", "keep RSS/c"
    jm = ""
    for (i = 1; i <= 2; i++) {
        t = tools[i]
        for (b = 1; b <= nl; b++) {
            k = t "," lv[b]; if (!(("kp," k) in cnt)) continue
            kp = median("kp," k); kr = median("kr," k); cp = median("cp," k); cr = median("cr," k)
            op = median("op," k); orr = median("or," k); tp = median("tp," k); kpc = median("kpc," k); krc = median("krc," k)
            kn = median("kn," k)
            printf "%-7s %4d %9d %9d %10d %10d %9d %9d %10d %11.0f %11.0f%s\n", t, lv[b], kp, kr, cp, cr, op, orr, tp, kpc, krc, \
                (kn != lv[b] ? sprintf("  (%d keepers found)", kn) : "")
            jm = jm sprintf("%s{\"tool\":\"%s\",\"n\":%d,\"keepers\":%d,\"keeper_pss_kib\":%d,\"keeper_rss_kib\":%d,\"containers_pss_kib\":%d,\"containers_rss_kib\":%d,\"other_pss_kib\":%d,\"other_rss_kib\":%d,\"total_pss_kib\":%d,\"keeper_pss_per_container_kib\":%.1f,\"keeper_rss_per_container_kib\":%.1f}", \
                jm == "" ? "" : ",", t, lv[b], kn, kp, kr, cp, cr, op, orr, tp, kpc, krc)
            if (lv[b] == top) { topk[t] = kpc; topr[t] = krc; topt[t] = tp }
        }
    }
    rj = ""
    printf "\n"
    if (("hutch" in topk) && ("podman" in topk) && topk["podman"] > 0) {
        r = topk["hutch"] / topk["podman"]; rr = topr["hutch"] / topr["podman"]
        printf "per container at n=%d: hutch supervisor PSS %.0f KiB, RSS %.0f KiB; podman conmon PSS %.0f KiB, RSS %.0f KiB\n", top, topk["hutch"], topr["hutch"], topk["podman"], topr["podman"]
        printf "supervisor / conmon, PSS = %5.2f   aim < 1: %s\n", r, (r < 1 ? "MET" : "MISSED")
        printf "supervisor / conmon, RSS = %5.2f   aim < 1: %s\n", rr, (rr < 1 ? "MET" : "MISSED")
        printf "all processes, n=%d, PSS: hutch %.1f MiB, podman %.1f MiB (podman / hutch = %.2f)\n", top, mib(topt["hutch"]), mib(topt["podman"]), topt["podman"] / (topt["hutch"] > 0 ? topt["hutch"] : 1)
        rj = sprintf(",\"supervisor_over_conmon_pss\":%.3f,\"supervisor_over_conmon_rss\":%.3f", r, rr)
    } else printf "supervisor / conmon: not measured (both tools are needed)\n"
    for (i = 1; i <= 2; i++) {
        t = tools[i]; k = "rm," t "," top
        if (k in cnt) printf "%s rm -f of %d containers: median %.0f ms%s\n", t, top, median(k), (t in rmfail) ? sprintf(" (%d failed)", rmfail[t]) : ""
    }
    printf "leftovers after rm -f: %s\n", (left == "" ? "none (no keeper or container process alive, ps -a empty)" : "")
    if (left != "") printf "%s", left
    if (fails != "") printf "failures:\n%s", fails

    printf "\npull time as the image grows: hutch pull + run --rm (unpack+start) against skopeo copy + umoci unpack,\n"
    printf "from the local registry, page cache warm, stores cold; median of %d\n", preps
    if (pullwhy != "") printf "not measured: %s\n", pullwhy
    printf "%-13s %8s %8s %9s %15s %12s %11s\n", "layer budget", "gzip MiB", "tar MiB", "hutch s", "skopeo+umoci s", "hutch / s+u", "hutch MiB/s"
    jp = ""
    for (i = 1; i <= ns; i++) {
        s = sizes[i]; h = ("p," s ",hutch,total" in cnt) ? median("p," s ",hutch,total") : -1
        u = ("p," s ",skopeo+umoci,total" in cnt) ? median("p," s ",skopeo+umoci,total") : -1
        printf "%-13s %8.1f %8.1f %9s %15s %12s %11s\n", s " MiB", gz[s] / 1048576, raw[s] / 1048576, (h >= 0 ? sprintf("%.2f", h) : "-"), \
            (u >= 0 ? sprintf("%.2f", u) : "-"), (h > 0 && u > 0 ? sprintf("%.2f", h / u) : "-"), (h > 0 ? sprintf("%.0f", raw[s] / 1048576 / h) : "-")
        jp = jp sprintf("%s{\"layer_budget_mib\":%d,\"gzip_bytes\":%d,\"tar_bytes\":%d,\"hutch_s\":%.3f,\"skopeo_umoci_s\":%.3f}", jp == "" ? "" : ",", s, gz[s], raw[s], h, u)
    }
    ju = ""
    for (i = 1; i <= 2; i++) if (tools[i] in unav) ju = ju sprintf("%s\"%s\":%s", ju == "" ? "" : ",", tools[i], jstr(unav[tools[i]]))
    printf "{\"benchmark\":\"growth\",\"mode\":\"%s\",\"machine\":%s,\"versions\":%s,\"hutch_commit\":\"%s\",\"levels\":[%s],\"rounds\":%d,\"unavailable\":{%s},\"start\":[%s],\"memory\":[%s],\"pull\":[%s],\"leftovers\":%s%s}\n", \
        mode, jstr(machine), jstr(vers), commit, levels_json(), rounds, ju, js, jm, jp, jstr(left), rj > json
}
function levels_json(   i, s) { s = ""; for (i = 1; i <= nl; i++) s = s (i > 1 ? ", " : "") lv[i]; return s }
