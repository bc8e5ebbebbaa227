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

// knotd serves the zone, applies updates signed with the key, refuses the
// wrong key, and is gone once the test that started it has ended.
func TestKnot(t *testing.T) {
	var pid int
	ok := t.Run("serve", func(t *testing.T) {
		k := Knot(t, "example.test")
		pid = k.Proc.PID()
		if k.Kind != "knot" || k.Zone != "example.test." || !strings.HasPrefix(k.Addr, "127.0.0.1:") {
			t.Errorf("Kind %q, Zone %q, Addr %q", k.Kind, k.Zone, k.Addr)
		}
		for _, f := range []string{k.KeyFile, k.WrongKeyFile} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), `key "eda-test-key" {`) || !strings.Contains(string(b), "algorithm hmac-sha256;") {
				t.Errorf("%s is not in tsig-keygen's format:\n%s", f, b)
			}
		}
		if b, err := os.ReadFile(k.KeyFile); err != nil || !strings.Contains(string(b), `secret "`+k.Secret+`";`) {
			t.Errorf("KeyFile lacks Secret %q (%v)", k.Secret, err)
		}

		soa := k.Records(t, "example.test.", dns.TypeSOA)
		if len(soa) != 1 || soa[0].(*dns.SOA).Ns != "ns1.example.test." || soa[0].(*dns.SOA).Serial != 1 {
			t.Fatalf("SOA = %v", soa)
		}
		if a := k.Records(t, "ns1.example.test.", dns.TypeA); len(a) != 1 || a[0].(*dns.A).A.String() != "127.0.0.1" {
			t.Errorf("ns1 A = %v", a)
		}

		k.MustUpdate(t,
			"update add infra1.example.test. 60 A 127.0.0.21",
			"update add _etcd-server._tcp.example.test. 60 SRV 0 0 2380 infra1.example.test.")
		srv := k.Records(t, "_etcd-server._tcp.example.test.", dns.TypeSRV)
		if len(srv) != 1 || srv[0].(*dns.SRV).Target != "infra1.example.test." || srv[0].(*dns.SRV).Port != 2380 {
			t.Errorf("SRV after update = %v", srv)
		}
		if soa := k.Records(t, "example.test.", dns.TypeSOA); len(soa) != 1 || soa[0].(*dns.SOA).Serial != 2 {
			t.Errorf("SOA after one update = %v; want serial 2", soa)
		}

		out, err := k.Update(context.Background(), k.WrongKeyFile, "update add infra2.example.test. 60 A 127.0.0.22")
		if err == nil || !strings.Contains(out, "BADSIG") {
			t.Errorf("update with the wrong key: err %v, output %q; want a failure naming BADSIG", err, out)
		}
		t.Logf("update with the wrong key: %v", err)
		if a := k.Records(t, "infra2.example.test.", dns.TypeA); len(a) != 0 {
			t.Errorf("wrong key's update applied: %v", a)
		}
	})
	if pid == 0 {
		if ok { // skipped: no knotd or tsig-keygen
			t.Skip("knotd did not start")
		}
		t.Fatal("knotd did not start")
	}
	// t.Cleanup of the subtest stopped knotd and reaped it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("knotd (pid %d) still exists after its test ended: kill 0: %v", pid, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two Knot servers run side by side on different ports.
func TestKnotTwice(t *testing.T) {
	a, b := Knot(t, "a.test."), Knot(t, "b.test.")
	if a.Addr == b.Addr {
		t.Fatalf("both on %s", a.Addr)
	}
	b.MustUpdate(t, "update add x.b.test. 60 A 127.0.0.9")
	if got := b.Records(t, "x.b.test.", dns.TypeA); len(got) != 1 {
		t.Errorf("x.b.test. A = %v", got)
	}
}
