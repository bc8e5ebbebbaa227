package resolver

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// ErrServiceUnavailable is the cause of a LookupError for an SRV answer
// whose only record has the target ".": the service is "decidedly not
// available at this domain" (RFC 2782). IsNotFound reports true for it.
var ErrServiceUnavailable = errors.New(`service decidedly not available (SRV target ".")`)

// SRVName returns the owner name of a service's SRV records, as
// net.LookupSRV builds it: "_service._proto.domain." (fully qualified), or
// domain itself when service and proto are both empty.
func SRVName(service, proto, domain string) string {
	if service == "" && proto == "" {
		return dns.Fqdn(domain)
	}
	return dns.Fqdn("_" + service + "._" + proto + "." + domain)
}

// LookupSRV returns the SRV records of _service._proto.domain in RFC 2782
// order: by priority, and within one priority in a weighted random order
// drawn with r.Rand (records of weight 0 come first and stay in answer order
// when all weights are 0). Targets are fully qualified, with the trailing
// dot, as in DNS and as net.LookupSRV returns them.
func (r *Resolver) LookupSRV(ctx context.Context, service, proto, domain string) ([]*net.SRV, error) {
	srvs, _, err := r.lookupSRV(ctx, service, proto, domain)
	return srvs, err
}

// lookupSRV is LookupSRV that also returns the addresses the answer's
// additional section gives for the targets (A before AAAA, each in answer
// order), keyed by the target in lower case.
func (r *Resolver) lookupSRV(ctx context.Context, service, proto, domain string) ([]*net.SRV, map[string][]netip.Addr, error) {
	name := SRVName(service, proto, domain)
	rep, err := r.lookup(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, nil, err
	}
	srvs := make([]*net.SRV, 0, len(rep.rrs))
	for _, rr := range rep.rrs {
		s := rr.(*dns.SRV)
		srvs = append(srvs, &net.SRV{Target: s.Target, Port: s.Port, Priority: s.Priority, Weight: s.Weight})
	}
	if len(srvs) == 1 && srvs[0].Target == "." {
		return nil, nil, &LookupError{Name: name, Type: "SRV", Server: rep.server, Rcode: dns.RcodeSuccess, Err: ErrServiceUnavailable}
	}
	r.sortSRV(srvs)
	return srvs, additionalAddrs(srvs, rep.extra), nil
}

// additionalAddrs collects the A and AAAA records of extra (an answer's
// additional section) that belong to one of the srvs' targets: servers add
// the addresses of targets they know (BIND, Knot and PowerDNS do for names
// in their zones), which saves a lookup per target. A target is absent from
// the result when the section has no address of it.
func additionalAddrs(srvs []*net.SRV, extra []dns.RR) map[string][]netip.Addr {
	targets := map[string]bool{}
	for _, s := range srvs {
		targets[strings.ToLower(s.Target)] = true
	}
	addrs := map[string][]netip.Addr{}
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		for _, rr := range extra {
			h := rr.Header()
			name := strings.ToLower(h.Name)
			if h.Rrtype != qtype || h.Class != dns.ClassINET || !targets[name] {
				continue
			}
			if ip, ok := rrAddr(rr); ok {
				addrs[name] = append(addrs[name], ip)
			}
		}
	}
	return addrs
}

// rrAddr returns the address of an A or AAAA record.
func rrAddr(rr dns.RR) (netip.Addr, bool) {
	switch rr := rr.(type) {
	case *dns.A:
		return netip.AddrFromSlice(rr.A.To4())
	case *dns.AAAA:
		ip, ok := netip.AddrFromSlice(rr.AAAA.To16())
		return ip.Unmap(), ok
	}
	return netip.Addr{}, false
}

// sortSRV orders srvs as RFC 2782 asks: ascending priority, then a weighted
// random order within each priority. Records of equal priority and weight
// keep their relative order before the shuffle (a stable sort), so a fixed
// Rand gives a fixed result.
func (r *Resolver) sortSRV(srvs []*net.SRV) {
	slices.SortStableFunc(srvs, func(a, b *net.SRV) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Weight, b.Weight))
	})
	for i := 0; i < len(srvs); {
		j := i + 1
		for j < len(srvs) && srvs[j].Priority == srvs[i].Priority {
			j++
		}
		r.shuffleByWeight(srvs[i:j])
		i = j
	}
}

// shuffleByWeight is the selection within one priority that RFC 2782
// describes and Go's net package implements: with total the sum of the
// weights of the records not yet placed, draw n in [0, total) and place next
// the first record whose running sum of weights exceeds n; repeat while
// total > 0. So a record is placed with probability weight/total, and
// records of weight 0 (sorted first) are placed only after every weighted
// record, in their answer order. (RFC 2782's inclusive range [0, total]
// would give them a tiny chance; Go's does not, nor does this.)
func (r *Resolver) shuffleByWeight(srvs []*net.SRV) {
	total := 0
	for _, s := range srvs {
		total += int(s.Weight)
	}
	for total > 0 && len(srvs) > 1 {
		n := r.intn(total)
		sum := 0
		for i, s := range srvs {
			sum += int(s.Weight)
			if sum > n {
				srvs[0], srvs[i] = srvs[i], srvs[0]
				break
			}
		}
		total -= int(srvs[0].Weight)
		srvs = srvs[1:]
	}
}

// LookupHost returns the IPv4 (A) then IPv6 (AAAA) addresses of name, each
// in answer order. An IP literal is returned as it is. When neither type has
// records the error satisfies IsNotFound; when one type has records, a
// failure of the other is ignored.
func (r *Resolver) LookupHost(ctx context.Context, name string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	var addrs []netip.Addr
	repA, errA := r.lookup(ctx, name, dns.TypeA)
	for _, rr := range repA.rrs {
		if ip, ok := rrAddr(rr); ok {
			addrs = append(addrs, ip)
		}
	}
	var le *LookupError
	if errors.As(errA, &le) && le.Rcode == dns.RcodeNameError {
		return nil, errA // the name does not exist: no need to ask for AAAA
	}
	repAAAA, errAAAA := r.lookup(ctx, name, dns.TypeAAAA)
	for _, rr := range repAAAA.rrs {
		if ip, ok := rrAddr(rr); ok {
			addrs = append(addrs, ip)
		}
	}
	switch {
	case len(addrs) > 0:
		return addrs, nil
	case errA != nil && !IsNotFound(errA):
		return nil, errA
	case errAAAA != nil && !IsNotFound(errAAAA):
		return nil, errAAAA
	case errA != nil:
		// Both not found: say so once, for both types.
		if errors.As(errA, &le) {
			return nil, &LookupError{Name: le.Name, Type: "A/AAAA", Server: le.Server, Rcode: le.Rcode, Err: le.Err}
		}
		return nil, errA
	}
	return nil, errAAAA
}
