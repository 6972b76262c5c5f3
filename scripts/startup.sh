#!/usr/bin/env bash
# startup.sh: how fast hardstrap starts (issue 14).
#
# Builds the stripped binary, reports its size, runs `hardstrap --version` and
# `hardstrap plan --only talos` N times each and prints the median process wall time,
# and sums the package init time from GODEBUG=inittrace=1 with the ten slowest packages.
#
#   scripts/startup.sh            # N=21
#   N=51 scripts/startup.sh
#   BIN=/path/to/hardstrap scripts/startup.sh   # measure a binary already built
#
# Goals: --version and plan --only talos under 50 ms, init under 20 ms, binary under 150 MB.
# These are goals, not a test: the figures move with the machine's load.
set -euo pipefail
export GOEXPERIMENT=jsonv2

N=${N:-21}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"

if [[ -z ${BIN:-} ]]; then
	BIN=$work/hardstrap
	go build -ldflags '-s -w' -o "$BIN" ./cmd/hardstrap
fi
size=$(stat -c %s "$BIN")
printf 'binary (stripped)      %d bytes (%s MB)\n' "$size" "$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1000000 }')"

# The demo config with freshly generated Talos machine configs beside it, as `make demo` lays them.
go run ./internal/tools/talosgen -out "$work/demo" >/dev/null
cp testdata/demo/hardstrap.yaml "$work/demo/hardstrap.yaml"

# median_ms CMD...: runs CMD N times (after one warm-up run) and prints the median wall time in ms.
median_ms() {
	"$@" >/dev/null 2>&1 || true
	local i t0 t1
	for ((i = 0; i < N; i++)); do
		t0=$(date +%s%N)
		"$@" >/dev/null 2>&1 || true
		t1=$(date +%s%N)
		echo $(((t1 - t0) / 1000))
	done | sort -n | awk '{v[NR] = $1} END {printf "%.1f", v[int((NR + 1) / 2)] / 1000}'
}

echo "--version              $(median_ms "$BIN" --version) ms (median of $N)"
echo "plan --only talos      $(median_ms "$BIN" plan --only talos -f "$work/demo/hardstrap.yaml") ms (median of $N)"

# inittrace lines: init PKG @T ms, C ms clock, B bytes, A allocs. One trace is noisy (a GC or a
# preemption lands on whichever package runs then), so take T traces and the median per package.
T=${T:-11}
for ((i = 0; i < T; i++)); do
	GODEBUG=inittrace=1 "$BIN" --version 2>&1 >/dev/null | awk -v run="$i" '/^init / {print run, $2, $5, $8}'
done >"$work/inittrace"
awk '
	{ms[$2] = ms[$2] " " $3; by[$2] = $4; sum[$1] += $3}
	function median(list,   v, n, i, j, t) {
		n = split(list, v, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
		return v[int((n + 1) / 2)]
	}
	END {
		runs = ""; for (r in sum) runs = runs " " sum[r]
		n = 0; for (p in ms) n++
		printf "package init           %.1f ms over %d packages (median of %d traces)\n", median(runs), n, length(sum)
		for (p in ms) printf "%.3f %d %s\n", median(ms[p]), by[p], p > "/dev/stderr"
	}' "$work/inittrace" 2>"$work/perpkg"
echo "slowest inits (median ms, bytes allocated, package):"
# awk, not head, takes the first ten: head would exit early and, with pipefail, sort's SIGPIPE
# would fail the script.
sort -g -r "$work/perpkg" | awk 'NR <= 10 {printf "  %7.2f  %10d  %s\n", $1, $2, $3}'
