#!/bin/sh
# Installs the real components the tests and the demo run against, from
# Debian's packages, when they are missing. Needs root (CI runs as root).
set -eu
need=""
command -v etcd >/dev/null 2>&1 || need="$need etcd-server"
command -v etcdctl >/dev/null 2>&1 || need="$need etcd-client"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ] || need="$need bind9"
command -v dig >/dev/null 2>&1 || need="$need bind9-dnsutils"
command -v tsig-keygen >/dev/null 2>&1 || [ -x /usr/sbin/tsig-keygen ] || need="$need bind9-utils"
command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || need="$need knot"
command -v pdns_server >/dev/null 2>&1 || [ -x /usr/sbin/pdns_server ] || need="$need pdns-server"
ls /usr/lib/*/pdns/libgsqlite3backend.so >/dev/null 2>&1 || need="$need pdns-backend-sqlite3"
command -v sqlite3 >/dev/null 2>&1 || need="$need sqlite3"
[ -n "$need" ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing Debian packages:$need; install them with: sudo apt-get install -y$need" >&2
	exit 1
fi
echo "installing:$need"
# The tests start their own servers on free ports; keep the packages' own
# services (etcd, named, knot, pdns, several wanting port 53) from starting
# on a machine whose init would start them: policy-rc.d's 101 tells
# invoke-rc.d and deb-systemd-invoke not to.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
