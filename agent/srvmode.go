package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// fromSRV forms the cluster from SRV records instead of a token: the host
// publishes its own records (they are its registration), waits until the
// records show Size members, and takes the cluster exactly as etcd's own
// --discovery-srv derives it. If the records describe a cluster that runs
// already, the host joins it. A host that fails before the records showed
// the cluster withdraws its records again: nobody counts it yet.
func (b *bootstrap) fromSRV(ctx context.Context) (p Plan, err error) {
	if err := b.publish(ctx); err != nil {
		return Plan{}, err
	}
	formed := false
	defer func() {
		if err != nil && !formed && b.cfg.DNS.Enabled() {
			b.withdraw(ctx, err)
		}
	}()
	members, addrs, err := b.srvCluster(ctx)
	if err != nil {
		return Plan{}, err
	}
	p = b.base
	p.Source, p.Members = SourceSRV, members
	if i := slices.IndexFunc(members, func(m Member) bool { return m.Name == b.cfg.Name }); i >= 0 {
		p.Self = members[i]
	}
	b.deps.Peers.Addrs = addrs
	joined, err := b.srvJoin(ctx, p)
	if err != nil {
		return Plan{}, err
	}
	formed = true
	if joined != nil {
		p = *joined
	} else if len(members) > b.cfg.Size {
		b.log.Warn("SRV records show more members than the size; using them all", "have", len(members), "size", b.cfg.Size)
	}
	b.saveCache(p)
	return p, nil
}

// srvCluster waits until the SRV records of the domain describe at least
// Size members, this one among them, and returns the initial cluster etcd
// derives from them (its own entry named Name, the others "0", "1", ...;
// peer URLs built from the SRV targets), and the addresses the targets
// resolved to (host name in lower case → address).
func (b *bootstrap) srvCluster(ctx context.Context) ([]Member, map[string]netip.Addr, error) {
	domain := dnsName(b.cfg.DiscoverySRV)
	type found struct {
		members []Member
		addrs   map[string]netip.Addr
	}
	w := wait{what: fmt.Sprintf("the SRV records of %s to show %d members", domain, b.cfg.Size), sched: pollBackoff, clock: b.deps.Clock, log: b.log}
	f, err := retry(ctx, w, func(ctx context.Context) (found, error) {
		// Only the service of this member's scheme: the others use the
		// same one, and it saves a query per try.
		cluster, peers, err := b.deps.Resolver.ClusterPeers(ctx, domain, b.cfg.DNS.SRVName, b.base.Self.PeerURLs, b.cfg.Name, b.cfg.Scheme)
		if err != nil {
			return found{}, fmt.Errorf("%w: %w", errNotYet, err)
		}
		members, err := ParseCluster(cluster)
		if err != nil {
			return found{}, fmt.Errorf("%w: SRV records of %s: %w", ErrDNS, domain, err)
		}
		if len(members) < b.cfg.Size {
			return found{}, fmt.Errorf("%w: %d of %d members in the SRV records", errNotYet, len(members), b.cfg.Size)
		}
		addrs := map[string]netip.Addr{}
		for _, p := range peers {
			if p.Err == nil {
				addrs[strings.ToLower(strings.TrimSuffix(p.Target, "."))] = p.Addr.Addr()
			}
		}
		return found{members, addrs}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	b.log.Info("SRV records describe the cluster", "domain", domain, "initial_cluster", InitialCluster(f.members))
	return f.members, f.addrs, nil
}

// srvJoin decides, once the SRV records describe the cluster, whether it
// runs already: it asks the other members for their member list. If one
// answers and this host is not in it (or was added by an earlier run), the
// host joins, and the plan it returns has the running cluster's member
// list, state existing. Nobody answering, or a list that has this host as
// an initial member, is a new cluster forming: nil.
func (b *bootstrap) srvJoin(ctx context.Context, p Plan) (*Plan, error) {
	var others []string
	for _, m := range p.Members {
		if m.Name != p.Self.Name {
			others = append(others, m.PeerURLs...)
		}
	}
	if len(others) == 0 {
		return nil, nil
	}
	ms, err := b.deps.Peers.Members(ctx, others)
	if err != nil {
		return nil, refused(fmt.Errorf("is the cluster in the SRV records running? %w", err), "the members' peer URLs", b.cfg.PeerTLS)
	}
	if ms == nil {
		return nil, nil
	}
	for _, u := range []string{p.Self.PeerURLs[0], b.base.Self.PeerURLs[0]} {
		if st, _ := joinClassify(ms, "", u); st == joinInitial {
			return nil, nil
		}
	}
	// A cluster formed from SRV records knows its members by target name,
	// one formed from a token (and published since) by address: join it
	// the way it knows the others.
	self := p.Self
	if byAddress(ms) {
		self = b.base.Self
	}
	b.log.Info("the cluster in the SRV records runs already; joining it", "members", len(ms), "peer_url", self.PeerURLs[0])
	joined, err := b.joiner(self).join(ctx, ms)
	if err != nil {
		return nil, err
	}
	p.Members, p.Self, p.State, p.Joined, p.Handover = joined, self, "existing", true, Handover{}
	return &p, nil
}
