package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Each server serves the zone, applies updates signed with the key (and
// increases the serial), refuses the wrong key, and is gone once the test
// that started it has ended.
func TestDNSServers(t *testing.T) {
	for i, start := range DNSServers() {
		kind := []string{"bind", "knot", "powerdns"}[i]
		t.Run(kind, func(t *testing.T) {
			var (
				pid     int
				skipped bool
			)
			t.Run("serve", func(t *testing.T) {
				defer func() { skipped = t.Skipped() }()
				s := start(t, "example.test")
				pid = s.Proc.PID()
				checkServer(t, s, kind)
			})
			if skipped {
				t.Skipf("%s: the serve subtest was skipped (its log says why)", kind)
			}
			if pid == 0 {
				t.Fatalf("%s did not start", kind)
			}
			// t.Cleanup of the subtest stopped the server and reaped it.
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := syscall.Kill(pid, 0)
				if errors.Is(err, syscall.ESRCH) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s (pid %d) still exists after its test ended: kill 0: %v", kind, pid, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func checkServer(t *testing.T, s *DNSServer, kind string) {
	if s.Kind != kind || s.Zone != "example.test." || !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Errorf("Kind %q, Zone %q, Addr %q", s.Kind, s.Zone, s.Addr)
	}
	for _, f := range []string{s.KeyFile, s.WrongKeyFile} {
		b := mustRead(t, f)
		if !strings.HasPrefix(b, `key "eda-test-key" {`) || !strings.Contains(b, "algorithm hmac-sha256;") {
			t.Errorf("%s is not in tsig-keygen's format:\n%s", f, b)
		}
	}
	if !strings.Contains(mustRead(t, s.KeyFile), `secret "`+s.Secret+`";`) || strings.Contains(mustRead(t, s.WrongKeyFile), s.Secret) {
		t.Errorf("KeyFile lacks Secret %q, or WrongKeyFile has it", s.Secret)
	}

	soa := s.Records(t, "example.test.", dns.TypeSOA)
	if len(soa) != 1 || soa[0].(*dns.SOA).Ns != "ns1.example.test." {
		t.Fatalf("SOA = %v", soa)
	}
	serial := soa[0].(*dns.SOA).Serial
	if a := s.Records(t, "ns1.example.test.", dns.TypeA); len(a) != 1 || a[0].(*dns.A).A.String() != "127.0.0.1" {
		t.Errorf("ns1 A = %v", a)
	}

	s.MustUpdate(t,
		"update add infra1.example.test. 60 A 127.0.0.21",
		"update add _etcd-server._tcp.example.test. 60 SRV 0 0 2380 infra1.example.test.")
	srv := s.Records(t, "_etcd-server._tcp.example.test.", dns.TypeSRV)
	if len(srv) != 1 || srv[0].(*dns.SRV).Target != "infra1.example.test." || srv[0].(*dns.SRV).Port != 2380 {
		t.Errorf("SRV after update = %v", srv)
	}
	if a := s.Records(t, "infra1.example.test.", dns.TypeA); len(a) != 1 || a[0].(*dns.A).A.String() != "127.0.0.21" {
		t.Errorf("infra1 A after update = %v", a)
	}
	if soa := s.Records(t, "example.test.", dns.TypeSOA); len(soa) != 1 || soa[0].(*dns.SOA).Serial <= serial {
		t.Errorf("SOA after update = %v; want a serial above %d", soa, serial)
	}
	switch kind {
	case "bind":
		if _, err := os.Stat(filepath.Join(s.Dir, "zone.db.jnl")); err != nil {
			t.Errorf("no journal after an update: %v", err)
		}
	case "powerdns":
		if out := s.PDNSUtil(t, "get-meta", s.Zone, "TSIG-ALLOW-DNSUPDATE"); !strings.Contains(out, "eda-test-key") {
			t.Errorf("TSIG-ALLOW-DNSUPDATE: %s", out)
		}
	}

	out, err := s.Update(context.Background(), s.WrongKeyFile, "update add infra2.example.test. 60 A 127.0.0.22")
	if err == nil {
		t.Errorf("update with the wrong key succeeded: %q", out)
	}
	t.Logf("update with the wrong key: %v", err)
	if a := s.Records(t, "infra2.example.test.", dns.TypeA); len(a) != 0 {
		t.Errorf("wrong key's update applied: %v", a)
	}
}

// Two servers of a kind run side by side on different ports, each with
// its own files.
func TestDNSServersTwice(t *testing.T) {
	for _, start := range DNSServers() {
		a, b := start(t, "a.test."), start(t, "b.test.")
		t.Run(a.Kind, func(t *testing.T) {
			if a.Addr == b.Addr || a.Dir == b.Dir {
				t.Fatalf("both on %s in %s", a.Addr, a.Dir)
			}
			b.MustUpdate(t, "update add x.b.test. 60 A 127.0.0.9")
			if got := b.Records(t, "x.b.test.", dns.TypeA); len(got) != 1 {
				t.Errorf("x.b.test. A = %v", got)
			}
		})
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
