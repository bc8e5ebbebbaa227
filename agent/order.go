package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// leadURL returns the lowest peer URL of all members and whether it is one
// of self's.
//
// Why it matters: etcd started with a static --initial-cluster first asks
// the other members for their member list, trying their peer URLs in sorted
// order, one second each, and stops at the first answer. A peer whose port is
// open but which is itself still busy with that question does not answer, so
// members that all start in the same instant wait on each other for up to a
// second per peer. If the member with the lowest URL starts first, every
// other member's first question goes to a peer that already serves, and the
// rest can start together without waiting at all.
func leadURL(members []Member, self Member) (string, bool) {
	var lowest, owner string
	for _, m := range members {
		for _, u := range m.PeerURLs {
			if lowest == "" || u < lowest {
				lowest, owner = u, m.Name
			}
		}
	}
	// By name: in SRV mode the cluster names this host's URL by its SRV
	// target, not by the advertised address.
	return lowest, owner == self.Name
}

// leadPoll is the pause between two looks at the lead member.
const leadPoll = 5 * time.Millisecond

// waitForLead waits, at most bound, until the lead member answers on its
// peer URL, so that this member's etcd finds a serving peer first. It
// never fails: a dead lead only costs the bound. A lead URL with a DNS name
// is reached at its address in peers.Addrs, else resolved once.
func waitForLead(ctx context.Context, members []Member, self Member, bound time.Duration, peers Peers, clock Clock, log *slog.Logger) {
	if bound <= 0 || len(members) < 2 {
		return
	}
	lead, isLead := leadURL(members, self)
	if isLead {
		log.Info("this member has the lowest peer URL and starts first", "peer_url", lead)
		return
	}
	start := clock.Now()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if u, err := url.Parse(lead); err == nil {
		host := strings.ToLower(u.Hostname())
		_, known := peers.Addrs[host]
		if _, err := netip.ParseAddr(host); err != nil && !known {
			if ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host); err == nil && len(ips) > 0 {
				peers.Addrs = maps.Clone(peers.Addrs)
				if peers.Addrs == nil {
					peers.Addrs = map[string]netip.Addr{}
				}
				peers.Addrs[host] = ips[0].Unmap()
			}
		}
	}
	w := wait{what: "the lead member " + lead + " to serve", sched: backoff{first: leadPoll, most: leadPoll}, clock: clock, log: log}
	err := w.run(ctx, func(ctx context.Context) error {
		if peers.Serves(ctx, lead) {
			return nil
		}
		return fmt.Errorf("%w: it does not answer yet", errNotYet)
	})
	waited := clock.Now().Sub(start).Round(time.Millisecond).String()
	if err != nil {
		log.Warn("lead member did not answer in time; starting anyway", "lead", lead, "waited", waited)
		return
	}
	log.Info("lead member serves", "lead", lead, "waited", waited)
}
