package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Network is a small routed network of test hosts, each in a network
// namespace of its own, joined through a router namespace. Addresses come
// from 198.18.0.0/15, the range RFC 2544 sets aside for network tests, and
// exist only inside the namespaces the test creates; the test process
// reaches them through one veth link to the router. Each host's
// /etc/netns/NS/resolv.conf names a DNS server on the router (see
// DNSServer in the router with Network.Named), which `ip netns exec`
// shows processes as /etc/resolv.conf.
type Network struct {
	Router     string     // the router namespace
	RouterAddr netip.Addr // on the router's loopback, reachable from every host
	id         string
	hosts      atomic.Int32
}

// Namespace creates an empty network namespace with its loopback up, and
// removes it when the test ends. It skips the test when it cannot (not
// root, no iproute2).
func Namespace(t testing.TB, name string) string {
	t.Helper()
	needNetns(t)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		SkipUnlessCI(t, "cannot create a network namespace here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// needNetns skips the test under -short, and when it cannot make network
// namespaces (not root, no iproute2's ip): see SkipUnlessCI.
func needNetns(t testing.TB) {
	t.Helper()
	SkipIfShort(t)
	if os.Geteuid() != 0 {
		SkipUnlessCI(t, "network namespaces need root (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		SkipUnlessCI(t, "network namespaces need iproute2's ip: %v", err)
	}
}

// NewNetwork creates the router namespace and the link to it, or skips the
// test when it cannot (not root, no iproute2, no veth). Everything is
// removed when the test ends. What a run that never got to its cleanup (a
// killed test process) left behind is removed first; see clearLeftovers.
func NewNetwork(t testing.TB) *Network {
	t.Helper()
	needNetns(t)
	lockNetworks(t)
	return buildNetwork(t)
}

// lockNetworks waits until no other process has a Network and keeps it so
// until the test ends: the test process's link and route use fixed
// addresses, so networks of tests running in parallel processes take
// turns. The lock goes with the process that holds it, also when it is
// killed.
func lockNetworks(t testing.TB) {
	t.Helper()
	release := takeNetworkLock(t)
	t.Cleanup(release) // registered before the network's, so it runs after them
}

// takeNetworkLock waits for the network lock and returns its release.
func takeNetworkLock(t testing.TB) (release func()) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "eda-test-network.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() { lock.Close() }
}

// buildNetwork is NewNetwork once the test holds the network lock.
func buildNetwork(t testing.TB) *Network {
	t.Helper()
	if err := clearLeftovers(); err != nil {
		t.Fatalf("clear what an earlier test network left behind: %v", err)
	}
	if out, err := exec.Command("ip", "route", "show", "exact", networkPrefix).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("%s is routed on this host by something that is not a test network (%v): %s; testenv leaves it alone", networkPrefix, err, out)
	}
	n := &Network{id: fmt.Sprintf("eda%05x", rand.IntN(1<<20)), RouterAddr: netip.MustParseAddr("198.18.255.1")}
	n.Router = Namespace(t, n.id+"-r")
	IP(t, "-n", n.Router, "addr", "add", n.RouterAddr.String()+"/32", "dev", "lo")
	n.execIn(t, n.Router, "sysctl", "-qw", "net.ipv4.ip_forward=1")

	// The test process's own link: 198.18.254.1 here, .2 on the router.
	here, there := n.id+"-t", n.id+"-tr"
	if out, err := exec.Command("ip", "link", "add", here, "type", "veth", "peer", "name", there, "netns", n.Router).CombinedOutput(); err != nil {
		SkipUnlessCI(t, "cannot create a veth pair here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", here).Run() })
	IP(t, "addr", "add", "198.18.254.1/30", "dev", here)
	IP(t, "link", "set", here, "up")
	IP(t, "-n", n.Router, "addr", "add", "198.18.254.2/30", "dev", there)
	IP(t, "-n", n.Router, "link", "set", there, "up")
	IP(t, "route", "add", networkPrefix, "via", "198.18.254.2", "dev", here)
	return n
}

// networkPrefix is what the test process routes to a Network's router.
const networkPrefix = "198.18.0.0/16"

// A Network's names: its ID is "eda" and 5 hex digits (interface names
// are at most 15 bytes: ID + "-250r"); its namespaces are ID-r (the
// router) and ID-hK (host K), each host's resolv.conf lives in
// /etc/netns/ID-hK, and the test process's end of its link is ID-t.
var (
	ownNamespace = regexp.MustCompile(`^eda[0-9a-f]{5}-(r|h[0-9]+)$`)
	ownLink      = regexp.MustCompile(`^eda[0-9a-f]{5}-t$`)
)

// clearLeftovers removes what Networks of test processes that died before
// their cleanup left behind: the test process's link (and with it the
// route through it), the namespaces (after killing any process still in
// one), and the /etc/netns entries. It touches only names that NewNetwork
// makes (see ownNamespace, ownLink), and only while holding the network
// lock, when no live process has a Network: whatever carries such a name
// then is a leftover.
func clearLeftovers() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) error {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	links, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return err
	}
	for _, l := range links {
		if ownLink.MatchString(l.Name()) {
			if err := run("link", "del", l.Name()); err != nil {
				return err
			}
		}
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line) // "NAME" or "NAME (id: N)"
		if len(f) == 0 || !ownNamespace.MatchString(f[0]) {
			continue
		}
		pids, err := exec.CommandContext(ctx, "ip", "netns", "pids", f[0]).Output()
		if err != nil {
			return fmt.Errorf("ip netns pids %s: %w", f[0], err)
		}
		for _, p := range strings.Fields(string(pids)) {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if err := run("netns", "del", f[0]); err != nil {
			return err
		}
	}
	etc, err := os.ReadDir("/etc/netns")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range etc {
		if ownNamespace.MatchString(e.Name()) {
			if err := os.RemoveAll(filepath.Join("/etc/netns", e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddHost makes a host in its own namespace with address 198.18.K.2 (K
// counting hosts), a default route through the router, and a resolv.conf
// naming the router's address.
func (n *Network) AddHost(t testing.TB, name string) NetHost {
	t.Helper()
	k := n.hosts.Add(1)
	if k > 250 {
		t.Fatal("too many hosts in one test network")
	}
	ns := Namespace(t, fmt.Sprintf("%s-h%d", n.id, k))
	etc := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+n.RouterAddr.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostIf, routerIf := fmt.Sprintf("%s-%d", n.id, k), fmt.Sprintf("%s-%dr", n.id, k)
	IP(t, "-n", ns, "link", "add", hostIf, "type", "veth", "peer", "name", routerIf, "netns", n.Router)
	IP(t, "-n", ns, "addr", "add", fmt.Sprintf("198.18.%d.2/24", k), "dev", hostIf)
	IP(t, "-n", ns, "link", "set", hostIf, "up")
	IP(t, "-n", n.Router, "addr", "add", fmt.Sprintf("198.18.%d.1/24", k), "dev", routerIf)
	IP(t, "-n", n.Router, "link", "set", routerIf, "up")
	IP(t, "-n", ns, "route", "add", "default", "via", fmt.Sprintf("198.18.%d.1", k))
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return NetHost{Host: Host{Name: name, Addr: netip.AddrFrom4([4]byte{198, 18, byte(k), 2}), Dir: dir}, NS: ns}
}

// NetHost is a Host in a namespace of its own.
type NetHost struct {
	Host
	NS string
}

// Start runs bin inside the host's namespace (ip netns exec, which also
// shows it the host's resolv.conf); the PID is bin's own.
func (h NetHost) Start(t testing.TB, name, bin string, args, env []string) *Process {
	t.Helper()
	return Start(t, name, "ip", append([]string{"netns", "exec", h.NS, bin}, args...), env)
}

// execIn runs a short command inside namespace ns.
func (n *Network) execIn(t testing.TB, ns string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %v: %v\n%s", ns, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// IP runs ip(8) with args, failing the test on an error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}
