package testenv

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Two hosts in their own namespaces resolve names through the network's
// named and reach each other through the router.
func TestNetwork(t *testing.T) {
	n := NewNetwork(t)
	named := n.Named(t, "example.test.")
	a, b := n.AddHost(t, "a"), n.AddHost(t, "b")
	named.MustUpdate(t, "update add b.example.test. 60 A "+b.Addr.String())

	// The test process reaches named in the router namespace.
	if rrs := named.Records(t, "b.example.test.", dns.TypeA); len(rrs) != 1 {
		t.Fatalf("named answered %v", rrs)
	}
	// Host a reads its own resolv.conf and resolves b through named.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := n.execIn(t, a.NS, "cat", "/etc/resolv.conf")
	if !strings.Contains(out, n.RouterAddr.String()) {
		t.Fatalf("host a's resolv.conf: %q", out)
	}
	out = n.execIn(t, a.NS, "dig", "+short", "+time=2", "+tries=1", "b.example.test", "A")
	if out != b.Addr.String() {
		t.Errorf("host a resolved b.example.test to %q; want %s", out, b.Addr)
	}
	// etcd on host b serves; the test process and host a reach it across
	// the router.
	etcd := EtcdBinary(t)
	client, peer := "http://"+b.Addr.String()+":2379", "http://"+b.Addr.String()+":2380"
	p := b.Start(t, "etcd-b", etcd, []string{
		"--name", "b", "--data-dir", b.DataDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "b=" + peer,
	}, nil)
	WaitHealthy(t, p, 30*time.Second, client)
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", a.NS, "etcdctl", "--endpoints", "http://b.example.test:2379", "endpoint", "health").CombinedOutput(); err != nil {
		t.Errorf("host a cannot reach etcd on host b by name: %v\n%s", err, out)
	}
}
