package resolver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds one query to one server when Resolver.Timeout is 0.
const DefaultTimeout = 2 * time.Second

// EDNSBufferSize is the UDP payload size the resolver advertises with EDNS0:
// 1232 bytes, the size DNS Flag Day 2020 recommends and Go's own resolver
// uses, so answers fit in one unfragmented datagram; larger answers come back
// truncated and are asked again over TCP.
const EDNSBufferSize = 1232

// Resolver sends queries to fixed DNS servers. The zero value has no
// servers; build one with FromResolvConf or fill Servers. A Resolver may
// be used concurrently; do not copy one after first use.
type Resolver struct {
	// Servers are asked in order, as "host:port" (":53" is added when the
	// port is missing). A server that does not answer, or answers SERVFAIL,
	// REFUSED or another error, is skipped for the next; NXDOMAIN and empty
	// answers are final. Once a server has answered, later lookups of the
	// same Resolver ask it first.
	Servers []string
	// Timeout bounds one query (UDP, and TCP after truncation, each) to
	// one server; 0 means DefaultTimeout.
	Timeout time.Duration
	// Rand returns a random int in [0, n); it orders SRV records of equal
	// priority by weight. nil means math/rand/v2's IntN.
	Rand func(n int) int

	// preferred is the index of the server that gave the last definite
	// answer; lookups start there, so a dead first server costs one
	// timeout per Resolver rather than one per query (Cluster makes
	// several queries).
	preferred atomic.Int32
}

// FromResolvConf returns a Resolver asking the nameservers of a
// resolv.conf(5) file (usually /etc/resolv.conf), with the default timeout.
func FromResolvConf(path string) (*Resolver, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read nameservers: %w", err)
	}
	if len(cc.Servers) == 0 {
		return nil, fmt.Errorf("read nameservers: no nameserver line in %s", path)
	}
	r := &Resolver{}
	for _, s := range cc.Servers {
		r.Servers = append(r.Servers, net.JoinHostPort(s, cc.Port))
	}
	return r, nil
}

// New returns a Resolver asking servers in turn (each an IP or IP:PORT, see
// ParseServer), or, without servers, the nameservers of the resolv.conf(5)
// file resolvConf.
func New(servers []string, resolvConf string) (*Resolver, error) {
	if len(servers) == 0 {
		return FromResolvConf(resolvConf)
	}
	r := &Resolver{}
	for _, s := range servers {
		ap, err := ParseServer(s)
		if err != nil {
			return nil, err
		}
		r.Servers = append(r.Servers, ap)
	}
	return r, nil
}

// ParseServer parses a DNS server given as an IP address or IP:PORT (an
// IPv6 address with a port in brackets) and returns it as "IP:PORT", port
// 53 when none is given. Names are refused: they would need a resolver.
func ParseServer(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	return "", fmt.Errorf("%q: want IP or IP:PORT", s)
}

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

func (r *Resolver) intn(n int) int {
	if r.Rand != nil {
		return r.Rand(n)
	}
	return rand.IntN(n)
}

// ErrNoData is the cause of a LookupError for a NOERROR answer without
// records of the asked type.
var ErrNoData = errors.New("no records")

// ErrNoServers is returned when a Resolver has no servers.
var ErrNoServers = errors.New("no DNS servers")

// LookupError is a failed lookup of one name and type on one server.
type LookupError struct {
	Name   string // fully qualified query name
	Type   string // "SRV", "A", "AAAA"
	Server string // "host:port"
	// Rcode is the answer's response code (dns.RcodeNameError, ...), or -1
	// when the server gave no usable answer (timeout, refused connection).
	Rcode int
	Err   error // the cause: ErrNoData, a network error, a ctx error, ...
}

func (e *LookupError) Error() string {
	s := fmt.Sprintf("lookup %s %s on %s", e.Name, e.Type, e.Server)
	switch {
	case e.Rcode < 0 && e.Err != nil:
		return s + ": " + e.Err.Error()
	case e.Rcode < 0:
		return s + ": no answer"
	case errors.Is(e.Err, ErrNoData):
		return fmt.Sprintf("%s: %s, no %s records", s, rcodeString(e.Rcode), e.Type)
	case e.Err != nil:
		return fmt.Sprintf("%s: %s: %v", s, rcodeString(e.Rcode), e.Err)
	}
	return s + ": " + rcodeString(e.Rcode)
}

func (e *LookupError) Unwrap() error { return e.Err }

// Timeout reports whether the server did not answer in time.
func (e *LookupError) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout() || errors.Is(e.Err, context.DeadlineExceeded)
}

// NotFound reports whether the name does not exist (NXDOMAIN), has no
// records of the type (NOERROR without data), or is an SRV name whose
// service is decidedly not available.
func (e *LookupError) NotFound() bool {
	return e.Rcode == dns.RcodeNameError || errors.Is(e.Err, ErrNoData) || errors.Is(e.Err, ErrServiceUnavailable)
}

// IsNotFound reports whether err is, or wraps, a LookupError for a name that
// does not exist or has no records of the asked type (see
// LookupError.NotFound): a definite answer, as opposed to a server that
// failed or did not answer. Joined errors (several servers, or both the
// https and http services) are not found only when each of them is.
func IsNotFound(err error) bool {
	for err != nil {
		switch e := err.(type) {
		case *LookupError:
			return e.NotFound()
		case interface{ Unwrap() []error }:
			errs := e.Unwrap()
			for _, err := range errs {
				if !IsNotFound(err) {
					return false
				}
			}
			return len(errs) > 0
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		default:
			return false
		}
	}
	return false
}

func rcodeString(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", rcode)
}

// newQuery builds the query for name (made fully qualified) and qtype:
// recursion desired, since the servers are usually recursive resolvers, and
// an EDNS0 OPT record advertising EDNSBufferSize without the DO bit.
func newQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(EDNSBufferSize, false)
	return m
}

// server returns s as "host:port", adding port 53 when it has none.
func server(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), "53")
}

// reply is what lookup keeps of an answer: the records of the asked type,
// the additional section, and the server that gave them.
type reply struct {
	rrs    []dns.RR
	extra  []dns.RR
	server string
}

// lookup asks the servers in turn for name and qtype and returns the records
// of that type in the answer (following CNAMEs within the answer), the
// additional section and the server that gave them, or a *LookupError
// (several, joined, when every server failed).
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (reply, error) {
	name = dns.Fqdn(name)
	typ := dns.TypeToString[qtype]
	if len(r.Servers) == 0 {
		return reply{}, fmt.Errorf("lookup %s %s: %w", name, typ, ErrNoServers)
	}
	var errs []error
	first := int(r.preferred.Load())
	for i := range r.Servers {
		idx := (first + i) % len(r.Servers)
		s := server(r.Servers[idx])
		resp, err := r.exchange(ctx, newQuery(name, qtype), s)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			errs = append(errs, &LookupError{Name: name, Type: typ, Server: s, Rcode: -1, Err: err})
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
			r.preferred.Store(int32(idx))
		}
		switch resp.Rcode {
		case dns.RcodeSuccess:
			rrs := answers(resp, name, qtype)
			if len(rrs) == 0 {
				return reply{server: s}, &LookupError{Name: name, Type: typ, Server: s, Rcode: resp.Rcode, Err: ErrNoData}
			}
			return reply{rrs: rrs, extra: resp.Extra, server: s}, nil
		case dns.RcodeNameError:
			return reply{server: s}, &LookupError{Name: name, Type: typ, Server: s, Rcode: resp.Rcode}
		default: // SERVFAIL, REFUSED, ...: another server may do better
			errs = append(errs, &LookupError{Name: name, Type: typ, Server: s, Rcode: resp.Rcode})
		}
	}
	return reply{}, joinErrors(errs)
}

// joinErrors is errors.Join on one line: nil for none, the error itself for
// one, and for several their messages joined with "; " (errors.Is and As
// see each).
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return multiError(slices.Clone(errs))
}

type multiError []error

func (m multiError) Error() string {
	s := make([]string, len(m))
	for i, err := range m {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (m multiError) Unwrap() []error { return m }

// exchange sends m to server over UDP, and over TCP when the UDP answer is
// truncated; each exchange is bounded by the per-query timeout and by ctx
// (also when ctx is cancelled without a deadline).
func (r *Resolver) exchange(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	resp, err := r.exchangeNet(ctx, "udp", m, server)
	if resp != nil && resp.Truncated {
		// A truncated answer may also fail to unpack (counts larger than
		// what arrived): its error does not matter, TCP decides.
		resp, err = r.exchangeNet(ctx, "tcp", m, server)
		if err != nil {
			return nil, fmt.Errorf("truncated over udp, then tcp: %w", err)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := checkQuestion(m, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

func (r *Resolver) exchangeNet(ctx context.Context, network string, m *dns.Msg, server string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	c := &dns.Client{Net: network, Timeout: r.timeout()}
	conn, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// miekg/dns applies ctx's deadline to the connection but does not
	// watch for cancellation: end a blocked read when ctx is done.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	resp, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	return resp, err
}

// checkQuestion rejects an answer to another question than m's.
func checkQuestion(m, resp *dns.Msg) error {
	if len(resp.Question) == 0 && resp.Rcode != dns.RcodeSuccess {
		return nil // some servers send errors without the question
	}
	if len(resp.Question) != 1 {
		return fmt.Errorf("answer has %d questions", len(resp.Question))
	}
	q, a := m.Question[0], resp.Question[0]
	if !strings.EqualFold(q.Name, a.Name) || q.Qtype != a.Qtype || q.Qclass != a.Qclass {
		return fmt.Errorf("answer is for %s, not %s", strings.TrimSpace(a.String()), strings.TrimSpace(q.String()))
	}
	return nil
}

// answers returns the records of type qtype in resp's answer section that
// belong to name or to a name a CNAME chain from name leads to, in the
// order of the answer.
func answers(resp *dns.Msg, name string, qtype uint16) []dns.RR {
	names := map[string]bool{strings.ToLower(name): true}
	// Follow the chain; each pass adds at least one name or stops, so at
	// most len(resp.Answer) passes.
	for range resp.Answer {
		added := false
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME && names[strings.ToLower(c.Hdr.Name)] && !names[strings.ToLower(c.Target)] {
				names[strings.ToLower(c.Target)] = true
				added = true
			}
		}
		if !added {
			break
		}
	}
	var out []dns.RR
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype && rr.Header().Class == dns.ClassINET && names[strings.ToLower(rr.Header().Name)] {
			out = append(out, rr)
		}
	}
	return out
}
