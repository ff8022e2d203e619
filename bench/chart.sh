# bench/chart.sh: draws this run's start and growth results as a PNG with
# bench/chart (a crate of its own, built with cargo; never part of hutch).
# Sourced by bench/hutch-bench, which calls bench_chart after the groups.

# Results newer than this file were written by this run.
CHART_T0=$WORK/chart.t0
: >"$CHART_T0"

# chart_newest GROUP: the newest results-GROUP-*.json this run wrote.
chart_newest() {
    find "$OUT" -maxdepth 1 -name "results-$1-$MODE-*.json" -newer "$CHART_T0" -printf '%T@ %p\n' 2>/dev/null |
        sort -n | tail -1 | cut -d' ' -f2-
}

bench_chart() {
    local args=() start growth png cargo="" manifest=$HERE/chart/Cargo.toml
    start=$(chart_newest start)
    growth=$(chart_newest growth)
    [ -z "$start" ] || args+=(--start "$start")
    [ -z "$growth" ] || args+=(--growth "$growth")
    [ ${#args[@]} -gt 0 ] || return 0 # neither group ran
    png=$OUT/chart-$MODE-$(date -u +%Y%m%dT%H%M%SZ).png
    if have cargo; then
        cargo=$(command -v cargo)
    elif [ -x "${HOME:-/nonexistent}/.cargo/bin/cargo" ]; then
        cargo=$HOME/.cargo/bin/cargo
    fi
    if [ -z "$cargo" ]; then
        say "chart: no cargo here; to draw it: cargo run --release --manifest-path $manifest -- --out $png ${args[*]}"
        return 0
    fi
    say "chart: building bench/chart (plotters) and drawing $png"
    if ! timeout 900 "$cargo" build -q --release --manifest-path "$manifest" >"$WORK/chart.log" 2>&1 </dev/null; then
        say "chart: cargo build of bench/chart failed: $(grep -v '^[[:space:]]*$' "$WORK/chart.log" | tail -1 | cut -c1-160)"
        return 0
    fi
    if timeout 60 "$HERE/chart/target/release/hutch-bench-chart" --out "$png" "${args[@]}" >"$WORK/chart.log" 2>&1 </dev/null; then
        say "wrote $png"
    else
        say "chart: drawing failed: $(tail -1 "$WORK/chart.log" | cut -c1-160)"
    fi
}
