package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

// source names where the cluster comes from, for the state cache.
func (c *Config) source() string {
	if c.DiscoverySRV != "" {
		return "dns-srv:" + dnsName(c.DiscoverySRV)
	}
	return c.Discovery
}

// clusterToken is the ETCD_INITIAL_CLUSTER_TOKEN: the discovery URL for a
// token (etcd hashes it into IDs as v2 discovery does), --cluster-token in
// SRV mode (as etcd's own --discovery-srv uses --initial-cluster-token).
func (c *Config) clusterToken() string {
	if c.DiscoverySRV != "" {
		return c.ClusterToken
	}
	return c.Discovery
}

func (c *Config) resolver() (*resolver.Resolver, error) {
	r, err := resolver.New(c.DNSResolvers, "/etc/resolv.conf")
	switch {
	case err != nil && len(c.DNSResolvers) == 0:
		return nil, fmt.Errorf("%w: --dns-resolver not given and /etc/resolv.conf unusable: %w", ErrConfig, err)
	case err != nil:
		return nil, fmt.Errorf("%w: --dns-resolver %w", ErrConfig, err)
	}
	return r, nil
}

// The pauses between SRV lookups while members are missing: srvPollMin,
// doubling up to srvPollMax.
const (
	srvPollMin = 50 * time.Millisecond
	srvPollMax = 2 * time.Second
)

// srvCluster waits until the SRV records of --discovery-srv describe at
// least --size members, this one among them, and returns the initial
// cluster etcd derives from them (its own entry named --name, the others
// "0", "1", ...; peer URLs built from the SRV targets), and the addresses
// the targets resolved to.
func srvCluster(ctx context.Context, cfg Config, self Member, log *slog.Logger) ([]Member, map[string]netip.Addr, error) {
	res, err := cfg.resolver()
	if err != nil {
		return nil, nil, err
	}
	domain := dnsName(cfg.DiscoverySRV)
	var last error
	var report time.Time // when the wait was last logged: at once, then every 10 s
	for pause := srvPollMin; ; pause = min(2*pause, srvPollMax) {
		// Only the service of this member's scheme: the others use the
		// same one, and it saves a query per try.
		cluster, peers, err := res.ClusterPeers(ctx, domain, cfg.DNS.SRVName, self.PeerURLs, self.Name, cfg.Scheme)
		if err == nil {
			members, perr := ParseCluster(cluster)
			switch {
			case perr != nil:
				return nil, nil, fmt.Errorf("%w: SRV records of %s: %w", ErrDNS, domain, perr)
			case len(members) >= cfg.Size:
				log.Info("SRV records describe the cluster", "domain", domain, "initial_cluster", cluster)
				addrs := map[string]netip.Addr{}
				for _, p := range peers {
					if p.Err == nil {
						addrs[strings.ToLower(strings.TrimSuffix(p.Target, "."))] = p.Addr.Addr()
					}
				}
				return members, addrs, nil
			}
			last = fmt.Errorf("%d of %d members in the SRV records", len(members), cfg.Size)
		} else {
			last = err
		}
		if time.Since(report) >= 10*time.Second {
			log.Info("waiting for the SRV records to show every member", "domain", domain, "want", cfg.Size, "last", last.Error())
			report = time.Now()
		}
		// Hosts that start together see each other within tens of
		// milliseconds; a host that waits longer for late ones asks less
		// and less often, at most every srvPollMax.
		if err := sleep(ctx, pause); err != nil {
			return nil, nil, fmt.Errorf("%w waiting for the SRV records of %s: %v", ErrTimeout, domain, last)
		}
	}
}
