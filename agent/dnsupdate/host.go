package dnsupdate

import (
	"errors"
	"fmt"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
	"net/netip"
	"regexp"
	"strings"

	"github.com/miekg/dns"
)

// ErrInvalidHost reports a Host whose records cannot be built.
var ErrInvalidHost = errors.New("invalid host")

// DefaultTTL is the TTL of published records when Host.TTL is 0.
const DefaultTTL = 60

// Host is what one etcd member publishes for etcd's DNS SRV discovery
// (--discovery-srv Domain, --discovery-srv-name SRVName): a server and a
// client SRV record pointing at Target, and Target's A or AAAA record.
type Host struct {
	Domain     string     // SRV domain, etcd's --discovery-srv; the final dot is optional
	Name       string     // member name: one DNS label, Target's first label
	Addr       netip.Addr // the member's address: an A record for IPv4, AAAA for IPv6
	PeerPort   int        // port of the peer URL (2380), in the _etcd-server SRV record
	ClientPort int        // port of the client URL (2379), in the _etcd-client SRV record
	Scheme     string     // "http" or "https" (https uses the _etcd-*-ssl services)
	SRVName    string     // optional service suffix, etcd's --discovery-srv-name
	TTL        uint32     // of every record; 0 means DefaultTTL
}

// labelRE matches one host name label (RFC 1123 section 2.1): letters,
// digits and inner hyphens, at most 63 characters.
var labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// domain is Domain fully qualified.
func (h Host) domain() string { return dns.Fqdn(h.Domain) }

// Target is the SRV target, Name.Domain., fully qualified: etcd puts it,
// not the address, into the member's peer URL.
func (h Host) Target() string {
	d := h.domain()
	if d == "." {
		return h.Name + "."
	}
	return h.Name + "." + d
}

// PeerService is the owner of the peer SRV record:
// _etcd-server[-ssl][-SRVName]._tcp.Domain.
func (h Host) PeerService() string {
	return resolver.SRVName(resolver.ServerService(h.Scheme, h.SRVName), "tcp", h.domain())
}

// ClientService is the owner of the client SRV record:
// _etcd-client[-ssl][-SRVName]._tcp.Domain.
func (h Host) ClientService() string {
	return resolver.SRVName(resolver.ClientService(h.Scheme, h.SRVName), "tcp", h.domain())
}

func (h Host) ttl() uint32 {
	if h.TTL == 0 {
		return DefaultTTL
	}
	return h.TTL
}

// Validate checks that the records can be built: Domain is a host name of
// at least one label, Name and SRVName are single labels, Addr is a
// unicast address without a zone, the ports are 1 to 65535 and Scheme is
// http or https.
func (h Host) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidHost}, args...)...))
	}
	d := strings.TrimSuffix(h.Domain, ".")
	switch {
	case d == "":
		bad("empty SRV domain")
	case len(d) > 253:
		bad("SRV domain %q is longer than 253 characters", h.Domain)
	default:
		for l := range strings.SplitSeq(d, ".") {
			if !labelRE.MatchString(l) {
				bad("SRV domain %q: label %q: use letters, digits and inner '-' (at most 63)", h.Domain, l)
				break
			}
		}
	}
	if !labelRE.MatchString(h.Name) {
		bad("name %q becomes the first label of the SRV target: use letters, digits and inner '-' only (at most 63)", h.Name)
	}
	if h.SRVName != "" && (!labelRE.MatchString(h.SRVName) || len(h.SRVName) > 46) {
		bad("SRV name %q: use letters, digits and inner '-' only (at most 46, so _etcd-server-ssl-NAME stays one label)", h.SRVName)
	}
	if len(errs) == 0 {
		for _, n := range []string{h.PeerService(), h.Target()} {
			if len(n) > 254 {
				bad("name %s is longer than 253 characters", n)
			}
		}
	}
	switch a := h.Addr; {
	case !a.IsValid():
		bad("no address")
	case a.Zone() != "":
		bad("address %s has a zone; DNS cannot carry it", a)
	case a.Unmap().IsUnspecified() || a.IsMulticast():
		bad("address %s is not a unicast address", a)
	}
	for _, p := range []struct {
		what string
		port int
	}{{"peer", h.PeerPort}, {"client", h.ClientPort}} {
		if p.port < 1 || p.port > 65535 {
			bad("%s port %d is not from 1 to 65535", p.what, p.port)
		}
	}
	if h.Scheme != "http" && h.Scheme != "https" {
		bad("scheme %q: use http or https", h.Scheme)
	}
	return errors.Join(errs...)
}

// RRs returns the host's records, class IN: the peer SRV record (priority
// 0, weight 0, PeerPort, Target), the client SRV record (ClientPort) and
// Target's A record, or AAAA for an IPv6 address (an IPv4-mapped IPv6
// address gets an A record). It returns nil for a Host that fails Validate.
// Every call returns new records, so callers may change them.
func (h Host) RRs() []dns.RR {
	if h.Validate() != nil {
		return nil
	}
	ttl, target := h.ttl(), h.Target()
	srv := func(owner string, port int) dns.RR {
		return &dns.SRV{
			Hdr:      dns.RR_Header{Name: owner, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
			Priority: 0, Weight: 0, Port: uint16(port), Target: target,
		}
	}
	var addr dns.RR
	if a := h.Addr.Unmap(); a.Is4() {
		addr = &dns.A{Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()}
	} else {
		addr = &dns.AAAA{Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: a.AsSlice()}
	}
	return []dns.RR{srv(h.PeerService(), h.PeerPort), srv(h.ClientService(), h.ClientPort), addr}
}
