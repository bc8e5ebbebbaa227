package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/dnsupdate"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

// checkPublished asks the DNS what etcd's SRV bootstrap will ask, and
// returns an error for each way the answer would make etcd fail to find
// this member or mistake another for it: the peer and client SRV records
// must name this host's target with its ports, the target must resolve to
// exactly the advertised address, and no other peer target may resolve to
// the same address and port.
func checkPublished(ctx context.Context, res *resolver.Resolver, h dnsupdate.Host) error {
	target := h.Target()
	var problems []string
	peers, err := res.Peers(ctx, h.Domain, h.SRVName, h.Scheme)
	if err != nil && len(peers) == 0 {
		return fmt.Errorf("%w: check of the published records: %w", ErrDNS, err)
	}
	self := netip.AddrPortFrom(h.Addr, uint16(h.PeerPort))
	found := false
	for _, peer := range peers {
		mine := strings.EqualFold(peer.Target, target)
		switch {
		case mine && peer.Err != nil:
			problems = append(problems, fmt.Sprintf("target %s does not resolve: %v", target, peer.Err))
			found = true
		case mine && int(peer.Port) != h.PeerPort:
			problems = append(problems, fmt.Sprintf("%s points at %s port %d, not the peer port %d", h.PeerService(), target, peer.Port, h.PeerPort))
		case mine:
			found = true
			if peer.Addr != self {
				problems = append(problems, fmt.Sprintf("target %s resolves to %s, not the advertised %s", target, peer.Addr.Addr(), h.Addr))
			} else if len(peer.Addrs) > 1 {
				problems = append(problems, fmt.Sprintf("target %s resolves to several addresses (%v); remove the stale ones", target, peer.Addrs))
			}
		case peer.Err == nil && peer.Addr == self:
			problems = append(problems, fmt.Sprintf("another target, %s, also resolves to %s: etcd would take it for this member", peer.Target, self))
		}
	}
	if !found {
		problems = append(problems, fmt.Sprintf("no %s record points at %s port %d", h.PeerService(), target, h.PeerPort))
	}
	clients, _ := res.LookupSRV(ctx, resolver.ClientService(h.Scheme, h.SRVName), "tcp", h.Domain)
	if !slices.ContainsFunc(clients, func(c *net.SRV) bool {
		return strings.EqualFold(c.Target, target) && int(c.Port) == h.ClientPort
	}) {
		problems = append(problems, fmt.Sprintf("no %s record points at %s port %d", h.ClientService(), target, h.ClientPort))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: the published records would mislead etcd's SRV discovery: %s", ErrDNS, strings.Join(problems, "; "))
	}
	return nil
}
