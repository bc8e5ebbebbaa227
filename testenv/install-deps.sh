#!/bin/sh
# Installs the real components the tests and the demo run against, from
# Debian's packages, when they are missing. Needs root (CI runs as root).
# It checks for the files the tests use (testenv and the tests name these
# paths, or find the program in $PATH where Debian installs it), not for a
# name anywhere on $PATH: a program elsewhere would not be the one tested.
set -eu
# want PACKAGE PATH...: PACKAGE is needed unless one of the paths exists.
want() {
	pkg=$1
	shift
	for p in "$@"; do
		[ -e "$p" ] && return 0
	done
	case " $need " in
	*" $pkg "*) ;;
	*) need="$need $pkg" ;;
	esac
}
# check sets need to the packages of every file that is missing.
check() {
	need=""
	want etcd-server /usr/bin/etcd                       # testenv.EtcdBinary
	want etcd-server /lib/systemd/system/etcd.service /usr/lib/systemd/system/etcd.service # systemd sandbox
	want etcd-client /usr/bin/etcdctl                    # netns and e2e tests, systemd sandbox
	want bind9 /usr/sbin/named                           # testenv.Named
	want bind9 /usr/sbin/tsig-keygen                     # every DNS server's keys
	want bind9-dnsutils /usr/bin/nsupdate                # DNSServer.Update
	want bind9-dnsutils /usr/bin/dig                     # netns and dnsupdate tests
	want knot /usr/sbin/knotd                            # testenv.Knot
	want pdns-server /usr/sbin/pdns_server               # testenv.PowerDNS
	want pdns-server /usr/bin/pdnsutil
	want pdns-backend-sqlite3 /usr/lib/*/pdns/libgsqlite3backend.so
	want pdns-backend-sqlite3 /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql
	want sqlite3 /usr/bin/sqlite3
	want systemd /usr/bin/systemd-analyze                # systemd unit tests
	want systemd /lib/systemd/systemd                    # systemd sandbox
	want iproute2 /sbin/ip                               # network namespaces
	want procps /sbin/sysctl                             # the test network's router
	want util-linux /usr/bin/setpriv                     # testenv hosts (--pdeathsig)
	want util-linux /usr/bin/unshare                     # systemd sandbox
	want util-linux /usr/bin/nsenter
	want time /usr/bin/time                              # BenchmarkFootprint (peak RSS, %M)
}
check
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
# A package may not hold a file where the tests look for it (another
# release, a diversion): say so, rather than let the tests skip.
check
if [ -n "$need" ]; then
	echo "files the tests use are still missing after installing; packages:$need" >&2
	exit 1
fi
