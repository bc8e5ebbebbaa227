package dnsupdate

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testUpdater(server string) *Updater {
	return &Updater{
		Server: server, Zone: "example.test",
		Key: Key{Name: "eda-test-key", Algorithm: "hmac-sha256", Secret: testSecret},
	}
}

func TestPublishMsg(t *testing.T) {
	h := testHost("infra1", "2001:db8::11")
	h.TTL = 120
	m := publishMsg("example.test", h.RRs())
	checkUpdateHeader(t, m)
	want := []string{
		"_etcd-server._tcp.example.test. 120 IN SRV 0 0 2380 infra1.example.test.",
		"_etcd-client._tcp.example.test. 120 IN SRV 0 0 2379 infra1.example.test.",
		"infra1.example.test. 120 IN AAAA 2001:db8::11",
	}
	if got := rrStrings(m.Ns); !slices.Equal(got, want) {
		t.Errorf("update section:\n got %q\nwant %q", got, want)
	}
	for _, rr := range m.Ns {
		if hdr := rr.Header(); hdr.Class != dns.ClassINET || hdr.Rrtype == dns.TypeANY || hdr.Ttl != 120 {
			t.Errorf("%v: not an RFC 2136 2.5.1 add (class IN, a real type, the TTL)", rr)
		}
	}
}

func TestWithdrawMsg(t *testing.T) {
	h := testHost("infra1", "192.0.2.11")
	h.Scheme = "https"
	m := withdrawMsg("example.test.", h.RRs())
	checkUpdateHeader(t, m)
	want := []string{
		"_etcd-server-ssl._tcp.example.test. 0 NONE SRV 0 0 2380 infra1.example.test.",
		"_etcd-client-ssl._tcp.example.test. 0 NONE SRV 0 0 2379 infra1.example.test.",
		"infra1.example.test. 0 NONE A 192.0.2.11",
	}
	if got := rrStrings(m.Ns); !slices.Equal(got, want) {
		t.Errorf("update section:\n got %q\nwant %q", got, want)
	}
	for _, rr := range m.Ns {
		if hdr := rr.Header(); hdr.Class != dns.ClassNONE || hdr.Ttl != 0 || hdr.Rrtype == dns.TypeANY {
			t.Errorf("%v: not an RFC 2136 2.5.4 delete-RR (class NONE, TTL 0, with RDATA)", rr)
		}
	}
}

// checkUpdateHeader checks what publish and withdraw messages share: an
// UPDATE for the zone's SOA, class IN, no prerequisites, nothing
// additional (TSIG comes with sign).
func checkUpdateHeader(t *testing.T, m *dns.Msg) {
	t.Helper()
	if m.Opcode != dns.OpcodeUpdate || m.Response {
		t.Errorf("opcode %s, response %v; want UPDATE request", dns.OpcodeToString[m.Opcode], m.Response)
	}
	want := dns.Question{Name: "example.test.", Qtype: dns.TypeSOA, Qclass: dns.ClassINET}
	if len(m.Question) != 1 || m.Question[0] != want {
		t.Errorf("zone section %v, want %v", m.Question, want)
	}
	if len(m.Answer) != 0 {
		t.Errorf("prerequisites %v, want none", m.Answer)
	}
	if len(m.Extra) != 0 {
		t.Errorf("additional %v, want none", m.Extra)
	}
	if len(m.Ns) != 3 {
		t.Errorf("update section has %d records, want 3", len(m.Ns))
	}
}

func TestSign(t *testing.T) {
	u := testUpdater("127.0.0.1:53")
	u.Key.Name = "EDA-Test-Key"
	signed := time.Unix(1_700_000_000, 0)
	u.now = func() time.Time { return signed }
	m := publishMsg(u.Zone, testHost("infra1", "192.0.2.11").RRs())
	u.sign(m)
	tsig := m.IsTsig()
	if tsig == nil {
		t.Fatal("no TSIG record last in the additional section")
	}
	if tsig.Hdr.Name != "eda-test-key." || tsig.Algorithm != dns.HmacSHA256 || tsig.Fudge != 300 ||
		tsig.TimeSigned != uint64(signed.Unix()) || tsig.OrigId != m.Id {
		t.Errorf("TSIG stub %v", tsig)
	}
	wire, _, err := dns.TsigGenerate(m, testSecret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	var back dns.Msg
	if err := back.Unpack(wire); err != nil {
		t.Fatal(err)
	}
	if got := back.IsTsig(); got == nil || got.MAC == "" {
		t.Fatalf("packed message has no MAC: %v", got)
	}
	if len(back.Ns) != 3 || len(back.Extra) != 1 {
		t.Errorf("packed message: %d updates, %d additional", len(back.Ns), len(back.Extra))
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		change  func(u *Updater, h *Host)
		wantErr string
		is      error
	}{
		{"no server", func(u *Updater, h *Host) { u.Server = "" }, "no DNS server", ErrInvalidConfig},
		{"no port", func(u *Updater, h *Host) { u.Server = "127.0.0.1" }, `DNS server "127.0.0.1": want host:port`, ErrInvalidConfig},
		{"no zone", func(u *Updater, h *Host) { u.Zone = "" }, "no zone", ErrInvalidConfig},
		{"bad zone", func(u *Updater, h *Host) { u.Zone = "a..b" }, `zone "a..b"`, ErrInvalidConfig},
		{"domain outside zone", func(u *Updater, h *Host) { h.Domain = "example.org" },
			"SRV domain example.org. is outside zone example.test., so the server would answer NOTZONE", ErrInvalidConfig},
		{"zone below domain", func(u *Updater, h *Host) { u.Zone = "sub.example.test" }, "outside zone sub.example.test.", ErrInvalidConfig},
		{"bad key", func(u *Updater, h *Host) { u.Key.Algorithm = "hmac-sha3" }, `unknown algorithm "hmac-sha3"`, ErrInvalidKey},
		{"bad secret", func(u *Updater, h *Host) { u.Key.Secret = "%" + testSecret }, "not valid base64", ErrInvalidKey},
		{"bad host", func(u *Updater, h *Host) { h.PeerPort = -1 }, "peer port -1", ErrInvalidHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, h := testUpdater("127.0.0.1:1"), testHost("infra1", "127.0.0.1")
			tt.change(u, &h)
			for _, op := range []func(context.Context, Host) error{u.Publish, u.Withdraw} {
				err := op(context.Background(), h)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.is) {
					t.Fatalf("got %v, want %v %q", err, tt.is, tt.wantErr)
				}
				assertNoSecret(t, err.Error(), testSecret)
			}
		})
	}
	// A domain below the zone, and the zone itself, are fine.
	for _, d := range []string{"example.test", "EXAMPLE.test.", "etcd.example.test"} {
		u, h := testUpdater("127.0.0.1:1"), testHost("infra1", "127.0.0.1")
		h.Domain = d
		if err := u.check(h); err != nil {
			t.Errorf("domain %s: %v", d, err)
		}
	}
}

// testServer serves DNS over TCP on a free loopback port with handler and
// returns its address. With secret, it verifies TSIG and signs answers
// that carry a TSIG stub.
func testServer(t *testing.T, handler dns.HandlerFunc, secret map[string]string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.Handle(".", handler)
	started := make(chan struct{})
	srv := &dns.Server{
		Listener: l, Handler: mux, TsigSecret: secret,
		MsgAcceptFunc:     func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept },
		NotifyStartedFunc: func() { close(started) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("test server: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("test server did not start")
	}
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return l.Addr().String()
}

// answer returns a handler that answers every update with rcode, signed
// (with the server's secret, even if the request did not verify) when sign
// is set.
func answer(rcode int, sign bool) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		if t := r.IsTsig(); sign && t != nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		}
		_ = w.WriteMsg(m)
	}
}

// Failures that need no real server: a local miekg/dns server answers as
// told.
func TestUpdateErrors(t *testing.T) {
	secret := map[string]string{"eda-test-key.": testSecret}
	closed := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	tests := []struct {
		name      string
		server    func(t *testing.T) string
		wantCode  string
		wantRetry bool
		want      []string
	}{
		{
			name:     "success",
			server:   func(t *testing.T) string { return testServer(t, answer(dns.RcodeSuccess, true), secret) },
			wantCode: "",
		},
		{
			name:      "connection refused",
			server:    closed,
			wantCode:  "no answer",
			wantRetry: true,
			want:      []string{"connection refused", "check that 127.0.0.1:", "accepts DNS over TCP"},
		},
		{
			name:     "unsigned NOERROR",
			server:   func(t *testing.T) string { return testServer(t, answer(dns.RcodeSuccess, false), secret) },
			wantCode: "untrusted answer",
			want:     []string{"without a TSIG signature", "may or may not have been applied"},
		},
		{
			name: "answer signed with another secret",
			server: func(t *testing.T) string {
				return testServer(t, answer(dns.RcodeSuccess, true), map[string]string{"eda-test-key.": "c2VjcmV0LW9mLXNvbWVvbmUtZWxzZQ=="})
			},
			wantCode: "untrusted answer",
			want:     []string{"did not verify", "may be forged"},
		},
		{
			name:     "REFUSED",
			server:   func(t *testing.T) string { return testServer(t, answer(dns.RcodeRefused, true), secret) },
			wantCode: "REFUSED",
			want: []string{
				`does not let key "eda-test-key" update these records (_etcd-server._tcp.example.test. and _etcd-client._tcp.example.test. SRV, infra1.example.test. A/AAAA)`,
				`update-policy { grant "eda-test-key" subdomain example.test. SRV A AAAA; };`,
			},
		},
		{
			name:      "SERVFAIL",
			server:    func(t *testing.T) string { return testServer(t, answer(dns.RcodeServerFailure, true), secret) },
			wantCode:  "SERVFAIL",
			wantRetry: true,
			want:      []string{"see its log"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := testUpdater(tt.server(t))
			h := testHost("infra1", "192.0.2.11")
			for _, op := range []func(context.Context, Host) error{u.Publish, u.Withdraw} {
				err := op(context.Background(), h)
				if tt.wantCode == "" {
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				var ue *UpdateError
				if !errors.As(err, &ue) {
					t.Fatalf("got %v, want *UpdateError", err)
				}
				if ue.Code() != tt.wantCode || ue.Retryable() != tt.wantRetry {
					t.Errorf("code %q retryable %v, want %q %v: %v", ue.Code(), ue.Retryable(), tt.wantCode, tt.wantRetry, err)
				}
				for _, w := range append(tt.want, u.Server, "infra1.example.test.", "zone example.test.") {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q: %v", w, err)
					}
				}
				assertNoSecret(t, err.Error(), testSecret)
			}
		})
	}
}

// A server without RFC 2136 support answers NOTIMP (unsigned).
func TestNotImplemented(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{Listener: l, Handler: dns.NewServeMux(), NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	<-started
	err = testUpdater(l.Addr().String()).Publish(context.Background(), testHost("infra1", "192.0.2.11"))
	var ue *UpdateError
	if !errors.As(err, &ue) || ue.Rcode != dns.RcodeNotImplemented || !strings.Contains(err.Error(), "does not implement dynamic updates") {
		t.Fatalf("got %v, want NOTIMP", err)
	}
}

// Cancelling ctx ends an exchange with a server that never answers, well
// before the timeout.
func TestContextCancel(t *testing.T) {
	release := make(chan struct{})
	addr := testServer(t, func(w dns.ResponseWriter, r *dns.Msg) { <-release }, nil)
	t.Cleanup(func() { close(release) }) // runs before the server's shutdown
	u := testUpdater(addr)
	u.Timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := u.Publish(ctx, testHost("infra1", "192.0.2.11"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Publish returned after %s", d)
	}
	// The per-exchange timeout applies without a ctx deadline.
	u.Timeout = 300 * time.Millisecond
	err = u.Publish(context.Background(), testHost("infra1", "192.0.2.11"))
	var ue *UpdateError
	// Whichever ends the exchange first, the context's deadline or the
	// connection's read deadline, it is a timeout.
	timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
	if !errors.As(err, &ue) || ue.Code() != "no answer" || !timedOut {
		t.Fatalf("got %v, want no answer after the timeout", err)
	}
}
