package testenv

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSProxy is a DNS forwarder on 127.0.0.1 (UDP and TCP on one port) that
// records every query it passes on, so that a test can count what a client
// asked. It forwards each query unchanged to Upstream over the transport it
// came on, and answers SERVFAIL when the upstream does not answer.
type DNSProxy struct {
	Addr     string // "127.0.0.1:PORT"
	Upstream string // "host:port"
	// StripAdditional: the proxy drops the additional section of every
	// answer but the OPT record, as a server with minimal responses would.
	StripAdditional bool

	mu      sync.Mutex
	queries []string
}

// StartDNSProxy starts a DNSProxy in front of upstream, stopped at the end
// of the test; with stripAdditional it drops additional sections.
func StartDNSProxy(t testing.TB, upstream string, stripAdditional bool) *DNSProxy {
	t.Helper()
	p := &DNSProxy{Upstream: upstream, StripAdditional: stripAdditional}
	port := FreeUDPTCPPort(t, "127.0.0.1")
	p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for _, network := range []string{"udp", "tcp"} {
		started := make(chan struct{})
		srv := &dns.Server{Addr: p.Addr, Net: network, Handler: dns.HandlerFunc(p.serve), NotifyStartedFunc: func() { close(started) }}
		errc := make(chan error, 1)
		go func() { errc <- srv.ListenAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("DNS proxy on %s/%s: %v", p.Addr, network, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("DNS proxy on %s/%s did not start", p.Addr, network)
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return p
}

func (p *DNSProxy) serve(w dns.ResponseWriter, q *dns.Msg) {
	network := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	if len(q.Question) == 1 {
		qq := q.Question[0]
		p.mu.Lock()
		p.queries = append(p.queries, strings.ToLower(qq.Name)+" "+dns.TypeToString[qq.Qtype])
		p.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, _, err := (&dns.Client{Net: network}).ExchangeContext(ctx, q, p.Upstream)
	if err != nil {
		resp = new(dns.Msg)
		resp.SetRcode(q, dns.RcodeServerFailure)
	}
	if p.StripAdditional {
		var keep []dns.RR
		for _, rr := range resp.Extra {
			if rr.Header().Rrtype == dns.TypeOPT {
				keep = append(keep, rr)
			}
		}
		resp.Extra = keep
	}
	_ = w.WriteMsg(resp)
}

// Queries returns the queries passed on so far, as "name type" (the name
// fully qualified, in lower case), in the order they came.
func (p *DNSProxy) Queries() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.queries...)
}

// Reset forgets the queries passed on so far.
func (p *DNSProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queries = nil
}
