package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The query: one question, fully qualified, class IN, recursion desired,
// EDNS0 with a 1232-byte buffer and no DO bit, a fresh ID.
func TestNewQuery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"_etcd-server._tcp.example.test", dns.TypeSRV, "_etcd-server._tcp.example.test."},
		{"infra1.example.test.", dns.TypeA, "infra1.example.test."},
		{"infra1.example.test", dns.TypeAAAA, "infra1.example.test."},
	} {
		m := newQuery(tc.name, tc.qtype)
		if len(m.Question) != 1 {
			t.Fatalf("%s: %d questions", tc.name, len(m.Question))
		}
		q := m.Question[0]
		if q.Name != tc.want || q.Qtype != tc.qtype || q.Qclass != dns.ClassINET {
			t.Errorf("newQuery(%q) question = %v; want %s IN %s", tc.name, q, tc.want, dns.TypeToString[tc.qtype])
		}
		if !m.RecursionDesired || m.Opcode != dns.OpcodeQuery || m.Response {
			t.Errorf("newQuery(%q) header = %+v; want a query with RD", tc.name, m.MsgHdr)
		}
		opt := m.IsEdns0()
		if opt == nil || opt.UDPSize() != 1232 || opt.Do() || opt.Version() != 0 {
			t.Errorf("newQuery(%q) OPT = %v; want EDNS0 with UDP size 1232, no DO", tc.name, opt)
		}
		if len(m.Answer)+len(m.Ns) != 0 || len(m.Extra) != 1 {
			t.Errorf("newQuery(%q) has records besides the question and the OPT: %v", tc.name, m)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		// 12 header + name + 4 + 11 OPT
		if want := 12 + len(tc.want) + 1 + 4 + 11; len(b) != want {
			t.Errorf("newQuery(%q) packs to %d bytes; want %d", tc.name, len(b), want)
		}
	}
	if newQuery("a.test", dns.TypeA).Id == newQuery("a.test", dns.TypeA).Id && newQuery("a.test", dns.TypeA).Id == newQuery("a.test", dns.TypeA).Id {
		t.Error("query IDs repeat")
	}
}

func TestServerAddress(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5353": "127.0.0.1:5353",
		"127.0.0.1":      "127.0.0.1:53",
		"::1":            "[::1]:53",
		"[::1]":          "[::1]:53",
		"[::1]:5353":     "[::1]:5353",
	} {
		if got := server(in); got != want {
			t.Errorf("server(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestSRVAndServiceNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{SRVName("etcd-server", "tcp", "example.test"), "_etcd-server._tcp.example.test."},
		{SRVName("etcd-server", "tcp", "example.test."), "_etcd-server._tcp.example.test."},
		{SRVName("", "", "_x._tcp.example.test"), "_x._tcp.example.test."},
		{ServerService("https", ""), "etcd-server-ssl"},
		{ServerService("http", ""), "etcd-server"},
		{ServerService("https", "prod"), "etcd-server-ssl-prod"},
		{ServerService("http", "prod"), "etcd-server-prod"},
		{ClientService("https", ""), "etcd-client-ssl"},
		{ClientService("http", "prod"), "etcd-client-prod"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q; want %q", tc.got, tc.want)
		}
	}
}

func TestPeerURL(t *testing.T) {
	for _, tc := range []struct {
		p    Peer
		want string
	}{
		{Peer{Scheme: "https", Target: "infra1.example.test.", Port: 2380}, "https://infra1.example.test:2380"},
		{Peer{Scheme: "http", Target: "infra1.example.test", Port: 12380}, "http://infra1.example.test:12380"},
	} {
		if got := tc.p.URL(); got != tc.want {
			t.Errorf("%+v.URL() = %q; want %q", tc.p, got, tc.want)
		}
	}
}

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Answers: records of the asked type for the asked name or names a CNAME
// chain in the answer leads to, case-insensitively, class IN only.
func TestAnswers(t *testing.T) {
	resp := new(dns.Msg)
	resp.Answer = []dns.RR{
		rr(t, "alias.example.test. 60 IN CNAME Mid.Example.Test."),
		rr(t, "other.example.test. 60 IN A 127.0.0.9"),
		rr(t, "mid.example.test. 60 IN CNAME real.example.test."),
		rr(t, "REAL.example.test. 60 IN A 127.0.0.1"),
		rr(t, "real.example.test. 60 CH A 127.0.0.3"),
		rr(t, "real.example.test. 60 IN AAAA ::1"),
		rr(t, "real.example.test. 60 IN A 127.0.0.2"),
	}
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"alias.example.test.", dns.TypeA, []string{"127.0.0.1", "127.0.0.2"}},
		{"real.example.test.", dns.TypeA, []string{"127.0.0.1", "127.0.0.2"}},
		{"alias.example.test.", dns.TypeAAAA, []string{"::1"}},
		{"other.example.test.", dns.TypeA, []string{"127.0.0.9"}},
		{"nothing.example.test.", dns.TypeA, nil},
		{"alias.example.test.", dns.TypeCNAME, []string{"mid.example.test."}},
	} {
		var got []string
		for _, r := range answers(resp, tc.name, tc.qtype) {
			switch r := r.(type) {
			case *dns.A:
				got = append(got, r.A.String())
			case *dns.AAAA:
				got = append(got, r.AAAA.String())
			case *dns.CNAME:
				got = append(got, strings.ToLower(r.Target))
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("answers(%s %s) = %v; want %v", tc.name, dns.TypeToString[tc.qtype], got, tc.want)
		}
	}
}

func TestCheckQuestion(t *testing.T) {
	q := newQuery("a.example.test", dns.TypeSRV)
	same := new(dns.Msg).SetReply(q)
	same.Question[0].Name = "A.EXAMPLE.test."
	other := new(dns.Msg).SetReply(q)
	other.Question[0].Name = "b.example.test."
	otherType := new(dns.Msg).SetReply(q)
	otherType.Question[0].Qtype = dns.TypeA
	bare := new(dns.Msg).SetRcode(q, dns.RcodeServerFailure)
	bare.Question = nil
	for _, tc := range []struct {
		name string
		resp *dns.Msg
		ok   bool
	}{
		{"same question, other case", same, true},
		{"other name", other, false},
		{"other type", otherType, false},
		{"error without question", bare, true},
	} {
		if err := checkQuestion(q, tc.resp); (err == nil) != tc.ok {
			t.Errorf("%s: checkQuestion = %v; want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// Error messages name the query, the type, the server and the rcode.
func TestLookupErrorMessages(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "udp", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		err                *LookupError
		want               string
		notFound, timedOut bool
	}{
		{
			err:      &LookupError{Name: "_etcd-server._tcp.example.test.", Type: "SRV", Server: "127.0.0.1:5353", Rcode: dns.RcodeNameError},
			want:     "lookup _etcd-server._tcp.example.test. SRV on 127.0.0.1:5353: NXDOMAIN",
			notFound: true,
		},
		{
			err:      &LookupError{Name: "example.test.", Type: "SRV", Server: "127.0.0.1:53", Rcode: dns.RcodeSuccess, Err: ErrNoData},
			want:     "lookup example.test. SRV on 127.0.0.1:53: NOERROR, no SRV records",
			notFound: true,
		},
		{
			err:  &LookupError{Name: "x.test.", Type: "A", Server: "127.0.0.1:53", Rcode: dns.RcodeServerFailure},
			want: "lookup x.test. A on 127.0.0.1:53: SERVFAIL",
		},
		{
			err:  &LookupError{Name: "x.test.", Type: "A", Server: "127.0.0.1:53", Rcode: dns.RcodeRefused},
			want: "lookup x.test. A on 127.0.0.1:53: REFUSED",
		},
		{
			err:      &LookupError{Name: "x.test.", Type: "AAAA", Server: "127.0.0.1:53", Rcode: -1, Err: timeout},
			want:     "lookup x.test. AAAA on 127.0.0.1:53: read udp: i/o timeout",
			timedOut: true,
		},
		{
			err:      &LookupError{Name: "x.test.", Type: "A", Server: "127.0.0.1:53", Rcode: -1, Err: context.DeadlineExceeded},
			want:     "lookup x.test. A on 127.0.0.1:53: context deadline exceeded",
			timedOut: true,
		},
		{
			err:  &LookupError{Name: "x.test.", Type: "A", Server: "127.0.0.1:53", Rcode: 3841},
			want: "lookup x.test. A on 127.0.0.1:53: rcode 3841",
		},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q; want %q", got, tc.want)
		}
		wrapped := fmt.Errorf("discovery: %w", tc.err)
		if IsNotFound(wrapped) != tc.notFound {
			t.Errorf("IsNotFound(%q) = %v; want %v", tc.want, !tc.notFound, tc.notFound)
		}
		if tc.err.Timeout() != tc.timedOut {
			t.Errorf("Timeout() of %q = %v; want %v", tc.want, !tc.timedOut, tc.timedOut)
		}
	}
	if IsNotFound(errors.New("lookup x NXDOMAIN")) || IsNotFound(nil) {
		t.Error("IsNotFound is true for an error that is no LookupError")
	}
	joined := joinErrors([]error{
		&LookupError{Name: "a.", Type: "A", Server: "s1:53", Rcode: dns.RcodeServerFailure},
		&LookupError{Name: "a.", Type: "A", Server: "s2:53", Rcode: dns.RcodeNameError},
	})
	if got, want := joined.Error(), "lookup a. A on s1:53: SERVFAIL; lookup a. A on s2:53: NXDOMAIN"; got != want {
		t.Errorf("joined = %q; want %q", got, want)
	}
	if IsNotFound(joined) || IsNotFound(fmt.Errorf("x: %w", joined)) {
		t.Error("IsNotFound is true for SERVFAIL joined with NXDOMAIN")
	}
	allNotFound := fmt.Errorf("discovery: %w", joinErrors([]error{
		&LookupError{Name: "a.", Type: "SRV", Server: "s1:53", Rcode: dns.RcodeNameError},
		fmt.Errorf("wrapped: %w", &LookupError{Name: "b.", Type: "SRV", Server: "s1:53", Rcode: dns.RcodeSuccess, Err: ErrNoData}),
	}))
	if !IsNotFound(allNotFound) {
		t.Errorf("IsNotFound(%v) = false; want true when every joined error is not found", allNotFound)
	}
	var le *LookupError
	if !errors.As(joined, &le) || le.Server != "s1:53" {
		t.Errorf("errors.As on joined errors found %v", le)
	}
}

func TestFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		conf    string
		want    []string
		wantErr bool
	}{
		{conf: "search example.test\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n", want: []string{"127.0.0.53:53", "[::1]:53"}},
		{conf: "# nothing\n", wantErr: true},
	} {
		path := filepath.Join(dir, "resolv.conf")
		if err := os.WriteFile(path, []byte(tc.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := FromResolvConf(path)
		if tc.wantErr {
			if err == nil {
				t.Errorf("FromResolvConf(%q) = %v; want an error", tc.conf, r.Servers)
			}
			continue
		}
		if err != nil || !slices.Equal(r.Servers, tc.want) {
			t.Errorf("FromResolvConf(%q) = %v, %v; want %v", tc.conf, r, err, tc.want)
		}
		if r.Timeout != 0 || r.timeout() != DefaultTimeout {
			t.Errorf("timeout %v; want the default", r.Timeout)
		}
	}
	if _, err := FromResolvConf(filepath.Join(dir, "missing")); err == nil {
		t.Error("FromResolvConf of a missing file: no error")
	}
}

func TestNoServers(t *testing.T) {
	_, err := (&Resolver{}).LookupSRV(context.Background(), "etcd-server", "tcp", "example.test")
	if !errors.Is(err, ErrNoServers) || !strings.Contains(err.Error(), "_etcd-server._tcp.example.test.") {
		t.Errorf("err = %v; want ErrNoServers naming the query", err)
	}
}
