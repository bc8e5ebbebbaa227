package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

// ErrDNS reports DNS records that were refused or that do not say what
// etcd's SRV discovery needs them to say.
var ErrDNS = errors.New("dns")

// published is what one host publishes: its SRV records point at Target,
// which resolves to Addr.
type published struct {
	Domain     string // SRV domain, fully qualified
	SRVName    string // optional service suffix (--discovery-srv-name)
	Scheme     string
	Target     string // fully qualified
	Addr       netip.Addr
	PeerPort   int
	ClientPort int
}

// checkPublished asks the DNS what etcd's SRV bootstrap will ask, and
// returns an error for each way the answer would make etcd fail to find
// this member or mistake another for it: the peer and client SRV records
// must name this host's target with its ports, the target must resolve to
// exactly the advertised address, and no other peer target may resolve to
// the same address and port.
func checkPublished(ctx context.Context, res *resolver.Resolver, p published) error {
	var problems []string
	peers, err := res.Peers(ctx, p.Domain, p.SRVName, p.Scheme)
	if err != nil && len(peers) == 0 {
		return fmt.Errorf("%w: check of the published records: %w", ErrDNS, err)
	}
	self := netip.AddrPortFrom(p.Addr, uint16(p.PeerPort))
	found := false
	for _, peer := range peers {
		mine := strings.EqualFold(peer.Target, p.Target)
		switch {
		case mine && peer.Err != nil:
			problems = append(problems, fmt.Sprintf("target %s does not resolve: %v", p.Target, peer.Err))
			found = true
		case mine && int(peer.Port) != p.PeerPort:
			problems = append(problems, fmt.Sprintf("%s points at %s port %d, not the peer port %d", resolver.SRVName(resolver.ServerService(p.Scheme, p.SRVName), "tcp", p.Domain), p.Target, peer.Port, p.PeerPort))
		case mine:
			found = true
			if peer.Addr != self {
				problems = append(problems, fmt.Sprintf("target %s resolves to %s, not the advertised %s", p.Target, peer.Addr.Addr(), p.Addr))
			}
		case peer.Err == nil && peer.Addr == self:
			problems = append(problems, fmt.Sprintf("another target, %s, also resolves to %s: etcd would take it for this member", peer.Target, self))
		}
	}
	if !found {
		problems = append(problems, fmt.Sprintf("no %s record points at %s port %d", resolver.SRVName(resolver.ServerService(p.Scheme, p.SRVName), "tcp", p.Domain), p.Target, p.PeerPort))
	}
	if addrs, err := res.LookupHost(ctx, p.Target); err == nil && len(addrs) > 1 {
		problems = append(problems, fmt.Sprintf("target %s resolves to several addresses (%v); remove the stale ones", p.Target, addrs))
	}
	clientService := resolver.ClientService(p.Scheme, p.SRVName)
	clients, _ := res.LookupSRV(ctx, clientService, "tcp", p.Domain)
	if !slices.ContainsFunc(clients, func(c *net.SRV) bool {
		return strings.EqualFold(c.Target, p.Target) && int(c.Port) == p.ClientPort
	}) {
		problems = append(problems, fmt.Sprintf("no %s record points at %s port %d", resolver.SRVName(clientService, "tcp", p.Domain), p.Target, p.ClientPort))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: the published records would mislead etcd's SRV discovery: %s", ErrDNS, strings.Join(problems, "; "))
	}
	return nil
}
