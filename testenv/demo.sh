#!/bin/bash
# make demo: a local registry etcd, a BIND named taking TSIG-signed updates
# for example.test, a v3 discovery token, three simulated hosts on loopback
# addresses, each running the agent with the token's agent.env (rendezvous
# on the token, publish its SRV records) and then etcd from the env file it
# wrote (as systemd's ExecStartPre and ExecStart would),
# then the result, also as DNS shows it; then a fourth host joins the running
# cluster by SRV alone, without the token. Cleans up everything it started, by
# PID, on exit.
set -euo pipefail
AGENT=$(realpath "${1:-bin/etcd-discovery-agent}")
ETCD=${ETCD_BIN:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL_BIN:-/usr/bin/etcdctl}
REG_ADDR=${DEMO_REGISTRY:-127.0.0.1:42379}
REG_PEER=${DEMO_REGISTRY_PEER:-127.0.0.1:42380}
NAMED=${NAMED_BIN:-/usr/sbin/named}
DNS_PORT=${DEMO_DNS_PORT:-42053}
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

echo "== registry: etcd $("$ETCD" --version | sed -n 's/etcd Version: //p') on $REG_ADDR (a v3 token needs no --enable-v2)"
"$ETCD" --name registry --data-dir "$work/registry" \
	--listen-client-urls "http://$REG_ADDR" --advertise-client-urls "http://$REG_ADDR" \
	--listen-peer-urls "http://$REG_PEER" --initial-advertise-peer-urls "http://$REG_PEER" \
	--initial-cluster "registry=http://$REG_PEER" >"$work/registry.log" 2>&1 &
pids+=($!)
export ETCDCTL_API=3
wait_healthy "http://$REG_ADDR"

echo "== DNS: BIND $("$NAMED" -v | sed 's/^BIND //; s/ .*//') serving example.test on 127.0.0.1:$DNS_PORT, updates with a TSIG key"
mkdir -p "$work/dns"
/usr/sbin/tsig-keygen -a hmac-sha256 etcd-agents >"$work/dns/etcd-agents.key"
chmod 600 "$work/dns/etcd-agents.key"
printf '$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 86400 5\n@ IN NS ns1\nns1 IN A 127.0.0.1\n' >"$work/dns/example.test.db"
cat >"$work/dns/named.conf" <<EOF
include "$work/dns/etcd-agents.key";
options {
	directory "$work/dns";
	pid-file "$work/dns/named.pid";
	lock-file "$work/dns/named.lock";
	session-keyfile "$work/dns/session.key";
	listen-on port $DNS_PORT { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
};
controls { };
zone "example.test" {
	type primary;
	file "$work/dns/example.test.db";
	update-policy { grant etcd-agents zonesub SRV A AAAA; };
};
EOF
"$NAMED" -g -c "$work/dns/named.conf" >"$work/named.log" 2>&1 &
pids+=($!)
dns_ready() { dig +short +time=1 +tries=1 -p "$DNS_PORT" @127.0.0.1 example.test SOA 2>/dev/null | grep -q ns1; }
for _ in $(seq 1 100); do dns_ready && break; sleep 0.1; done
if ! dns_ready; then
	echo "demo: named did not answer on 127.0.0.1:$DNS_PORT:" >&2
	tail -n 20 "$work/named.log" >&2
	exit 1
fi

"$AGENT" token new --v3 --endpoints "http://$REG_ADDR" --size ${#HOSTS[@]} --print env >"$work/agent.env"
echo "== a v3 token; token new --v3 --print env wrote the hosts' agent.env:"
cat "$work/agent.env"
token=$(sed -n 's/^EDA_DISCOVERY_TOKEN=//p' "$work/agent.env")

# run_host N ADDR AGENT-ENV AGENT-ARGS...: the agent's bootstrap with the
# settings of AGENT-ENV (as the unit's EnvironmentFile= gives them), then
# etcd from its env file, then the agent's promote with the same settings,
# as systemd's ExecStartPre, ExecStart and ExecStartPost would, in the
# background.
run_host() {
	local n=$1 addr=$2 agentenv=$3 dir="$work/host$1"
	shift 3
	mkdir -p "$dir"
	local flags=(--name "host$n" --advertise-address "$addr"
		--data-dir "$dir/etcd" --env-file "$dir/etcd.env" --state-dir "$dir/state" --timeout 60s
		--publish-server "127.0.0.1:$DNS_PORT" --publish-zone example.test --tsig-key-file "$work/dns/etcd-agents.key" "$@")
	(
		set -a; . "$agentenv"; set +a
		"$AGENT" bootstrap "${flags[@]}" || exit $?
		set -a; . "$dir/etcd.env"; set +a
		"$ETCD" & etcd=$!
		trap 'kill $etcd; wait $etcd' TERM
		"$AGENT" promote "${flags[@]}" || { kill $etcd; wait $etcd; exit 1; }
		wait $etcd
	) >"$work/host$n.log" 2>&1 &
	pids+=($!)
}

# wait_voter ADDR: wait at most 60 s until the member at ADDR is a started
# voter (a learner answers no health check until promote made it one).
wait_voter() {
	for _ in $(seq 1 600); do
		if "$ETCDCTL" --endpoints "http://${HOSTS[0]}:2379" member list 2>/dev/null | grep -q "started, host4, http://$1:2380, http://$1:2379, false"; then return 0; fi
		sleep 0.1
	done
	echo "demo: $1 did not become a voter; logs are in $work" >&2
	tail -n 20 "$work"/host4.log >&2
	return 1
}

for i in "${!HOSTS[@]}"; do
	echo "== host$((i + 1)) on ${HOSTS[$i]}: etcd-discovery-agent bootstrap (token, then DNS), then etcd from its env file"
	run_host $((i + 1)) "${HOSTS[$i]}" "$work/agent.env"
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
"$AGENT" token show --v3 --endpoints "http://$REG_ADDR" "$token"
echo
echo "== SRV records the hosts published (dig):"
dig +noall +answer -p "$DNS_PORT" @127.0.0.1 _etcd-server._tcp.example.test SRV
dig +noall +answer -p "$DNS_PORT" @127.0.0.1 _etcd-client._tcp.example.test SRV
echo "== the cluster etcd's --discovery-srv would find (etcd-discovery-agent lookup):"
"$AGENT" lookup --srv-domain example.test --dns-resolver "127.0.0.1:$DNS_PORT"
"$AGENT" lookup --srv-domain example.test --dns-resolver "127.0.0.1:$DNS_PORT" --client
echo
LATE=127.0.0.14
echo "== host4 on $LATE comes later, without a token: it finds the cluster by SRV, joins it as a learner, and promote makes it a voter"
run_host 4 "$LATE" /dev/null --discovery-srv example.test --size ${#HOSTS[@]} --dns-resolver "127.0.0.1:$DNS_PORT"
wait_voter "$LATE"
wait_healthy "http://$LATE:2379"
grep 'msg=' "$work/host4.log" | sed 's/^time=[^ ]* //'
echo "== member list:"
"$ETCDCTL" --endpoints "http://${HOSTS[0]}:2379" member list -w table
echo
echo "demo: a ${#HOSTS[@]}-member cluster formed by token, a fourth member joined by SRV; stopping it."
