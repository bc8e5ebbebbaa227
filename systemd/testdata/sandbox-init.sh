#!/bin/bash
# sandbox-init.sh SB: runs inside fresh mount, pid, uts, ipc, cgroup and net
# namespaces (made by unshare, see sandbox_test.go) and becomes the real
# systemd as PID 1, on an overlay of the host's root file system.
#
# This is the inner part of the tested recipe in
# shared/testing/systemd-sandbox.md (beside the repository) (approach 1), with quoting added
# and without its /dev/console binding (stdin is never a terminal here: the
# boot log goes to $SB/console.log until journald runs). SB is an empty
# scratch directory; files under $SB/seed/ are copied into the overlay's
# upper layer before boot. Every change the sandbox makes lands in a tmpfs
# and is gone when it stops; the host's root stays untouched. The mounts
# live only in the sandbox's private mount namespace.
set -euo pipefail
SB=$1; R=$SB/root; L=$SB/layer
m() { mount -n "$@"; }                       # -n: never write the host /run/mount/utab
mkdir -p "$R" "$L"
m -t tmpfs -o mode=755 sdsb-layer "$L"
mkdir -p "$L/upper/etc/systemd/system" "$L/work"
ln -s /dev/null "$L/upper/etc/systemd/system/timers.target"   # no apt-daily & co
# Boot this instead of default.target, which would start whatever the host
# has enabled (etcd, databases, ...) inside the sandbox.
printf "[Unit]\nDescription=Sandbox\nRequires=basic.target\nAfter=basic.target\n" > "$L/upper/etc/systemd/system/sandbox.target"
if [ -d "$SB/seed" ]; then cp -a "$SB/seed/." "$L/upper/"; fi
m -t overlay sdsb-root -o "lowerdir=/,upperdir=$L/upper,workdir=$L/work" "$R"
m -t proc proc "$R/proc"
m --bind "$R/proc/sys" "$R/proc/sys"; m -o remount,bind,ro "$R/proc/sys"   # keeps systemd-sysctl/binfmt off the host kernel
m -t sysfs -o ro sysfs "$R/sys"
m -t cgroup2 cgroup2 "$R/sys/fs/cgroup"        # systemd runs in unified mode, rooted at its own cgroup
m -t tmpfs -o mode=755,size=64m sdsb-dev "$R/dev"
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
	IFS=: read -r nm ma mi <<<"$n"; mknod -m 666 "$R/dev/$nm" c "$ma" "$mi"
done
mkdir -p "$R/dev/pts" "$R/dev/shm"
m -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$R/dev/pts"; ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
for i in 0:stdin 1:stdout 2:stderr; do ln -s "/proc/self/fd/${i%%:*}" "$R/dev/${i#*:}"; done
m -t tmpfs -o mode=1777 sdsb-shm "$R/dev/shm"
m -t tmpfs -o mode=755,size=256m sdsb-run "$R/run"
m -t tmpfs -o mode=1777 sdsb-tmp "$R/tmp"
cd "$R"; mkdir -p .oldroot; pivot_root . .oldroot; umount -n -l /.oldroot; rmdir /.oldroot; cd /
exec /usr/bin/env -i container=sdsb /lib/systemd/systemd --system --unit=sandbox.target
