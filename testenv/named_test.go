package testenv

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// named serves the zone, applies updates signed with the key (into its
// journal), refuses the wrong key, and is gone once the test that started
// it has ended.
func TestNamed(t *testing.T) {
	var pid int
	t.Run("serve", func(t *testing.T) {
		n := Named(t, "example.test")
		pid = n.Proc.PID()
		if n.Zone != "example.test." || !strings.HasPrefix(n.Addr, "127.0.0.1:") {
			t.Errorf("Zone %q, Addr %q", n.Zone, n.Addr)
		}
		for _, f := range []string{n.KeyFile, n.WrongKeyFile} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), `key "eda-test-key" {`) || !strings.Contains(string(b), "algorithm hmac-sha256;") {
				t.Errorf("%s is not in tsig-keygen's format:\n%s", f, b)
			}
		}
		if !strings.Contains(mustRead(t, n.KeyFile), n.Secret) {
			t.Errorf("KeyFile lacks Secret %q", n.Secret)
		}

		soa := n.Records(t, "example.test.", dns.TypeSOA)
		if len(soa) != 1 || soa[0].(*dns.SOA).Ns != "ns1.example.test." {
			t.Errorf("SOA = %v", soa)
		}
		if a := n.Records(t, "ns1.example.test.", dns.TypeA); len(a) != 1 || a[0].(*dns.A).A.String() != "127.0.0.1" {
			t.Errorf("ns1 A = %v", a)
		}

		n.MustUpdate(t,
			"update add infra1.example.test. 60 A 127.0.0.21",
			"update add _etcd-server._tcp.example.test. 60 SRV 0 0 2380 infra1.example.test.")
		srv := n.Records(t, "_etcd-server._tcp.example.test.", dns.TypeSRV)
		if len(srv) != 1 || srv[0].(*dns.SRV).Target != "infra1.example.test." || srv[0].(*dns.SRV).Port != 2380 {
			t.Errorf("SRV after update = %v", srv)
		}
		if _, err := os.Stat(n.Dir + "/zone.db.jnl"); err != nil {
			t.Errorf("no journal after an update: %v", err)
		}

		out, err := n.Update(context.Background(), n.WrongKeyFile, "update add infra2.example.test. 60 A 127.0.0.22")
		if err == nil || !strings.Contains(out, "BADSIG") {
			t.Errorf("update with the wrong key: err %v, output %q; want a failure naming BADSIG", err, out)
		}
		if a := n.Records(t, "infra2.example.test.", dns.TypeA); len(a) != 0 {
			t.Errorf("wrong key's update applied: %v", a)
		}
	})
	if pid == 0 {
		t.Fatal("named did not start")
	}
	// t.Cleanup of the subtest stopped named and reaped it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("named (pid %d) still exists after its test ended: kill 0: %v", pid, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two servers run side by side on different ports.
func TestNamedTwice(t *testing.T) {
	a, b := Named(t, "a.test."), Named(t, "b.test.")
	if a.Addr == b.Addr {
		t.Fatalf("both on %s", a.Addr)
	}
	b.MustUpdate(t, "update add x.b.test. 60 A 127.0.0.9")
	if got := b.Records(t, "x.b.test.", dns.TypeA); len(got) != 1 {
		t.Errorf("x.b.test. A = %v", got)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
