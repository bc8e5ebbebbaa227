package rfc2136

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="

func writeKey(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadKeyFile(t *testing.T) {
	good := "key \"eda-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + secret + "\";\n};\n"
	k, err := ReadKeyFile(writeKey(t, "# made by tsig-keygen\n"+good))
	if err != nil || k.Name != "eda-key." || k.Algorithm != dns.HmacSHA256 || k.Secret != secret {
		t.Fatalf("ReadKeyFile = %v, %v", k, err)
	}
	for _, printed := range []string{k.String(), fmt.Sprintf("%v %+v %#v", k, k, k), k.LogValue().String()} {
		if strings.Contains(printed, secret) {
			t.Errorf("key printed with its secret: %s", printed)
		}
	}
	for name, body := range map[string]string{
		"bad algorithm": strings.Replace(good, "hmac-sha256", "hmac-sha999", 1),
		"bad base64":    strings.Replace(good, secret, secret[:10]+"!!!"+secret[13:], 1),
		"no secret":     "key \"k\" { algorithm hmac-sha256; };",
		"no key block":  "secret \"" + secret + "\";",
	} {
		_, err := ReadKeyFile(writeKey(t, body))
		if err == nil || strings.Contains(err.Error(), secret[:12]) {
			t.Errorf("%s: %v; want an error that does not show the secret", name, err)
		}
	}
}

func TestRRsAndMessages(t *testing.T) {
	h := Host{Domain: "example.test.", Name: "infra1", Addr: netip.MustParseAddr("10.0.0.1"), PeerPort: 2380, ClientPort: 2379, Scheme: "http", TTL: 60}
	want := []string{
		"_etcd-server._tcp.example.test.\t60\tIN\tSRV\t0 0 2380 infra1.example.test.",
		"_etcd-client._tcp.example.test.\t60\tIN\tSRV\t0 0 2379 infra1.example.test.",
		"infra1.example.test.\t60\tIN\tA\t10.0.0.1",
	}
	for i, rr := range h.RRs() {
		if rr.String() != want[i] {
			t.Errorf("RR %d = %q; want %q", i, rr.String(), want[i])
		}
	}
	h6 := h
	h6.Addr, h6.Scheme, h6.SRVName = netip.MustParseAddr("2001:db8::1"), "https", "prod"
	got := fmt.Sprint(h6.RRs())
	for _, s := range []string{"_etcd-server-ssl-prod._tcp.example.test.", "_etcd-client-ssl-prod._tcp.example.test.", "AAAA\t2001:db8::1"} {
		if !strings.Contains(got, s) {
			t.Errorf("https/IPv6 records %s lack %q", got, s)
		}
	}

	u := &Updater{Zone: "example.test."}
	pub := u.PublishMsg(h)
	for _, rr := range pub.Ns {
		if rr.Header().Class != dns.ClassINET || rr.Header().Ttl != 60 {
			t.Errorf("publish record %v: want class IN with its TTL (add to an RRset)", rr)
		}
	}
	wd := u.WithdrawMsg(h)
	for _, rr := range wd.Ns {
		if rr.Header().Class != dns.ClassNONE || rr.Header().Ttl != 0 {
			t.Errorf("withdraw record %v: want class NONE, TTL 0 (delete one RR)", rr)
		}
	}
	if len(pub.Ns) != 3 || len(wd.Ns) != 3 || pub.Question[0].Qtype != dns.TypeSOA || pub.Opcode != dns.OpcodeUpdate {
		t.Errorf("messages: publish %v, withdraw %v", pub, wd)
	}
}

func count(t *testing.T, n *testenv.NamedServer, name string, qtype uint16) int {
	t.Helper()
	return len(n.Records(t, name, qtype))
}

func TestAgainstRealBIND(t *testing.T) {
	n := testenv.Named(t, "example.test.")
	key, err := ReadKeyFile(n.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	u := &Updater{Server: n.Addr, Zone: "example.test.", Key: key}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hosts := make([]Host, 3)
	for i := range hosts {
		hosts[i] = Host{Domain: "example.test.", Name: fmt.Sprintf("infra%d", i+1), Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), PeerPort: 2380, ClientPort: 2379, Scheme: "http", TTL: 60}
	}

	// Three hosts publish at the same instant; none clobbers another.
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		wg.Go(func() { errs[i] = u.Publish(ctx, h) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	check := func(peers, clients int) {
		t.Helper()
		if got := count(t, n, "_etcd-server._tcp.example.test.", dns.TypeSRV); got != peers {
			t.Errorf("%d peer SRV records; want %d", got, peers)
		}
		if got := count(t, n, "_etcd-client._tcp.example.test.", dns.TypeSRV); got != clients {
			t.Errorf("%d client SRV records; want %d", got, clients)
		}
	}
	check(3, 3)
	for _, h := range hosts {
		if got := count(t, n, h.Target(), dns.TypeA); got != 1 {
			t.Errorf("%s has %d A records; want 1", h.Target(), got)
		}
	}
	// Publishing again changes nothing.
	if err := u.Publish(ctx, hosts[0]); err != nil {
		t.Fatal(err)
	}
	check(3, 3)

	// Withdraw removes exactly one host's records.
	if err := u.Withdraw(ctx, hosts[1]); err != nil {
		t.Fatal(err)
	}
	check(2, 2)
	if count(t, n, hosts[1].Target(), dns.TypeA) != 0 || count(t, n, hosts[0].Target(), dns.TypeA) != 1 {
		t.Error("withdraw removed the wrong address records")
	}

	// Failures leave the zone as it was, and say what to fix.
	wrong, err := ReadKeyFile(n.WrongKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	unknown := key
	unknown.Name = "no-such-key."
	outside := hosts[1]
	outside.Domain = "elsewhere.test."
	for _, tc := range []struct {
		name string
		u    *Updater
		h    Host
		says string
	}{
		{"wrong secret", &Updater{Server: n.Addr, Zone: "example.test.", Key: wrong}, hosts[1], "BADSIG"},
		{"unknown key", &Updater{Server: n.Addr, Zone: "example.test.", Key: unknown}, hosts[1], "BADKEY"},
		{"name outside the zone", u, outside, "NOTZONE"},
	} {
		err := tc.u.Publish(ctx, tc.h)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), key.Secret) {
			t.Errorf("%s: %v; want an *Error mentioning %s and not the secret", tc.name, err, tc.says)
		}
	}
	check(2, 2)
}
