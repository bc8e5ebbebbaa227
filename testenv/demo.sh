#!/bin/bash
# make demo: a local registry etcd, three simulated hosts on loopback
# addresses, each running the agent and then etcd from the env file it wrote
# (as systemd's ExecStartPre and ExecStart would), then the result. Cleans up
# everything it started, by PID, on exit.
set -euo pipefail
AGENT=$(realpath "${1:-bin/etcd-discovery-agent}")
ETCD=${ETCD_BIN:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL_BIN:-/usr/bin/etcdctl}
REG_ADDR=${DEMO_REGISTRY:-127.0.0.1:42379}
REG_PEER=${DEMO_REGISTRY_PEER:-127.0.0.1:42380}
HOSTS=(127.0.0.11 127.0.0.12 127.0.0.13)

work=$(mktemp -d -t eda-demo-XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# wait_healthy URL: poll /health for at most 30 s.
wait_healthy() {
	for _ in $(seq 1 300); do
		if "$ETCDCTL" --endpoints "$1" endpoint health >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "demo: $1 did not become healthy; logs are in $work" >&2
	tail -n 20 "$work"/*.log >&2
	return 1
}

echo "== registry: etcd $("$ETCD" --version | sed -n 's/etcd Version: //p') with the v2 API on $REG_ADDR"
"$ETCD" --name registry --data-dir "$work/registry" --enable-v2 \
	--listen-client-urls "http://$REG_ADDR" --advertise-client-urls "http://$REG_ADDR" \
	--listen-peer-urls "http://$REG_PEER" --initial-advertise-peer-urls "http://$REG_PEER" \
	--initial-cluster "registry=http://$REG_PEER" >"$work/registry.log" 2>&1 &
pids+=($!)
export ETCDCTL_API=3
wait_healthy "http://$REG_ADDR"

url=$("$AGENT" token new --endpoints "http://$REG_ADDR" --size ${#HOSTS[@]})
echo "== token: $url"

for i in "${!HOSTS[@]}"; do
	n=$((i + 1)); addr=${HOSTS[$i]}; dir="$work/host$n"
	mkdir -p "$dir"
	echo "== host$n on $addr: etcd-discovery-agent bootstrap, then etcd from its env file"
	(
		"$AGENT" bootstrap --name "host$n" --discovery "$url" --advertise-address "$addr" \
			--data-dir "$dir/etcd" --env-file "$dir/etcd.env" --state-dir "$dir/state" --timeout 60s
		set -a; . "$dir/etcd.env"; set +a
		exec "$ETCD"
	) >"$work/host$n.log" 2>&1 &
	pids+=($!)
done
for addr in "${HOSTS[@]}"; do wait_healthy "http://$addr:2379"; done

echo
echo "== what the agent on host1 logged:"
grep 'msg=' "$work/host1.log" | sed 's/^time=[^ ]* //'
echo
echo "== env file of host1 ($work/host1/etcd.env):"
cat "$work/host1/etcd.env"
echo
echo "== member list:"
"$ETCDCTL" --endpoints "http://${HOSTS[0]}:2379" member list -w table
echo "== token:"
"$AGENT" token show "$url"
echo
echo "demo: a ${#HOSTS[@]}-member cluster formed; stopping it."
