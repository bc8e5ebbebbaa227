package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

// Deps are the parts of a bootstrap that do I/O, each behind the interface
// the core defines for it. cmd builds them from the Config.
type Deps struct {
	Registry  Registry           // the token; nil in SRV mode
	Publisher Publisher          // this host's DNS records; nil when none are published
	Resolver  *resolver.Resolver // SRV lookups (SRV mode); nil otherwise
	Cluster   ClusterDialer      // a running cluster's client URLs (join)
	Peers     Peers              // etcd's peer API (the member-list probe, the ordered start)
	Output    Output             // where the plan goes: the env file
	Clock     Clock
	Log       *slog.Logger
}

// Bootstrap decides how this host's etcd starts and writes it out: it
// validates the whole configuration, resolves the addresses and renders a
// trial env file before it touches anything; then it decides the plan
// from the data dir, the cached result, the SRV records or the token, and
// renders it. It returns an error, and writes no env file, whenever it
// cannot write one from which etcd starts correctly.
func Bootstrap(ctx context.Context, cfg Config, deps Deps) (*Plan, error) {
	b, err := prepare(cfg, deps)
	if err != nil {
		return nil, err
	}
	b.log.Info("starting", "peer_url", b.base.Self.PeerURLs[0], "listen", b.base.Host.ListenPeerURL, "discovery", b.cfg.source())
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	plan, err := b.decide(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.finish(ctx, plan); err != nil {
		return nil, err
	}
	return &plan, nil
}

// bootstrap is one run.
type bootstrap struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	base Plan // this host, with no cluster decided yet
	adv  netip.Addr
}

// prepare does every check that can fail before anything is written:
// the configuration, the addresses, the output of this host.
func prepare(cfg Config, deps Deps) (*bootstrap, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Output == nil, deps.Clock == nil, deps.Log == nil:
		return nil, errors.New("bootstrap: Output, Clock and Log are required")
	case cfg.DiscoverySRV == "" && deps.Registry == nil:
		return nil, errors.New("bootstrap: a Registry is required for a token")
	case cfg.DiscoverySRV != "" && deps.Resolver == nil:
		return nil, errors.New("bootstrap: a Resolver is required for SRV discovery")
	case cfg.DNS.Enabled() && deps.Publisher == nil:
		return nil, errors.New("bootstrap: a Publisher is required to publish records")
	case (cfg.OnFull == OnFullJoin || cfg.DiscoverySRV != "") && deps.Cluster == nil:
		return nil, errors.New("bootstrap: a Cluster dialer is required to join a running cluster")
	}
	b, err := newBootstrap(cfg, deps)
	if err != nil {
		return nil, err
	}
	b.base.Role, b.base.State = RoleMember, "new"
	b.base.ClusterToken, b.base.Host = cfg.clusterToken(), cfg.host(b.adv, b.deps.Peers.Local)
	switch cfg.Output {
	case OutputDiscoverySRV:
		b.base.Handover = Handover{SRV: strings.TrimSuffix(dnsName(cfg.DiscoverySRV), "."), SRVName: cfg.DNS.SRVName}
	case OutputDiscovery:
		b.base.Handover = Handover{URL: cfg.Discovery}
	case OutputDiscoveryToken:
		b.base.Handover = Handover{Token: cfg.DiscoveryToken, Endpoints: cfg.DiscoveryEndpoints, TLS: cfg.DiscoveryAuth}
	}
	// A trial: whatever the env file cannot carry (a data dir, a token)
	// fails here, before the registry or the DNS is touched.
	trial := b.base
	trial.Source, trial.Members = SourceRegistry, []Member{b.base.Self}
	if err := deps.Output.Check(trial); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := writable(filepath.Join(cfg.StateDir, stateFile)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, &FieldError{Field: "StateDir", Err: err})
	}
	return b, nil
}

// newBootstrap resolves this host's addresses and names it: the part of
// a run every command shares.
func newBootstrap(cfg Config, deps Deps) (*bootstrap, error) {
	adv, listen, err := cfg.addresses()
	if err != nil {
		return nil, err
	}
	b := &bootstrap{cfg: cfg, deps: deps, log: deps.Log.With("name", cfg.Name), adv: adv}
	b.deps.Peers.Local = listen
	b.base.Self = Member{Name: cfg.Name, PeerURLs: []string{HostURL(cfg.Scheme, adv, cfg.PeerPort)}}
	return b, nil
}

// host is what etcd needs of this host beside the cluster.
func (c *Config) host(adv, listen netip.Addr) Host {
	clients := []string{HostURL(c.Scheme, listen, c.ClientPort)}
	if c.ListenLoopback && !listen.IsLoopback() && !listen.IsUnspecified() {
		lo := netip.MustParseAddr("127.0.0.1")
		if listen.Is6() {
			lo = netip.IPv6Loopback()
		}
		clients = append(clients, HostURL(c.Scheme, lo, c.ClientPort))
	}
	return Host{
		Name:              c.Name,
		AdvertisePeerURLs: []string{HostURL(c.Scheme, adv, c.PeerPort)},
		ListenPeerURL:     HostURL(c.Scheme, listen, c.PeerPort),
		AdvertiseClient:   HostURL(c.Scheme, adv, c.ClientPort),
		ListenClientURLs:  clients,
		DataDir:           c.DataDir,
	}
}

// decide finds the plan: an initialised member restarts; a cached result
// is reused; otherwise the SRV records or the token decide.
func (b *bootstrap) decide(ctx context.Context) (Plan, error) {
	cached := b.loadCache()
	initialized, err := memberInitialized(b.cfg.DataDir)
	if err != nil {
		return Plan{}, err
	}
	switch {
	case initialized:
		return b.restart(cached), nil
	case cached != nil:
		b.log.Info("using the cached result of the earlier rendezvous", "role", cached.Role, "written", cached.Written)
		return b.fromCache(cached), nil
	case b.cfg.DiscoverySRV != "":
		return b.fromSRV(ctx)
	}
	p, err := b.fromToken(ctx)
	return p, refused(err, "the registry", b.cfg.DiscoveryAuth)
}

// restart is the plan of a member whose data dir holds its WAL: etcd
// ignores every bootstrap setting then, so the registry is not asked, and
// must not be, for a restart.
func (b *bootstrap) restart(cached *state) Plan {
	p := b.base
	p.Source, p.State = SourceDataDir, "existing"
	p.Handover = Handover{}
	if cached != nil && cached.Role == RoleMember {
		p.Members, p.Self = cached.cluster()
	} else {
		b.log.Warn("data dir holds a member but no cached member list matches; writing the env file without ETCD_INITIAL_CLUSTER")
	}
	b.log.Info("data dir already holds an initialised member; not contacting the registry", "data_dir", b.cfg.DataDir)
	return p
}

// fromCache is the plan of the cached result.
func (b *bootstrap) fromCache(cached *state) Plan {
	p := b.base
	p.Source, p.Role = SourceCache, cached.Role
	p.Members, p.Self = cached.cluster()
	if cached.State == "existing" {
		p.State, p.Joined = "existing", true
		p.Handover = Handover{}
	}
	return p
}

// fromToken runs the rendezvous and decides what a host that comes after
// the token filled does.
func (b *bootstrap) fromToken(ctx context.Context) (Plan, error) {
	if err := b.probe(ctx); err != nil {
		return Plan{}, err
	}
	r := newRendezvous(b.deps.Registry, b.base.Self, b.deps.Clock, b.log)
	run := r.run
	if b.cfg.Output == OutputDiscovery {
		run = r.peek
	}
	out, err := run(ctx)
	if err != nil {
		return Plan{}, err
	}
	p := b.base
	p.Source, p.Members = SourceRegistry, out.members
	if b.cfg.Output == OutputDiscovery && !out.full {
		b.log.Info("the token is usable and not full; etcd registers itself (ETCD_DISCOVERY)", "registered", len(out.members), "size", out.size)
		p.Members = nil
		return p, nil
	}
	if out.full {
		names := make([]string, len(out.members))
		for i, m := range out.members {
			names[i] = m.Name
		}
		switch b.cfg.OnFull {
		case OnFullJoin:
			b.log.Info("token is full; joining its running cluster", "members", strings.Join(names, ","))
			if p, err = b.joinToken(ctx, p, out.members); err != nil {
				return Plan{}, err
			}
		case OnFullProxy:
			b.log.Info("token is full; this host becomes a v2 proxy", "members", strings.Join(names, ","))
			p.Role = RoleProxy
		default:
			return Plan{}, fmt.Errorf("%w: %s already has its %d members (%s) and this host is not one of them",
				ErrTokenFull, b.deps.Registry.Token(), out.size, strings.Join(names, ", "))
		}
	}
	b.saveCache(p)
	return p, nil
}

// joinToken adds this host to the running cluster of a full token.
func (b *bootstrap) joinToken(ctx context.Context, p Plan, members []Member) (Plan, error) {
	var peers []string
	for _, m := range members {
		peers = append(peers, m.PeerURLs...)
	}
	ms, err := runningMembers(ctx, b.deps.Peers, peers, b.deps.Clock, b.log)
	if err != nil {
		return Plan{}, refused(fmt.Errorf("the running cluster of %s: %w", b.deps.Registry.Token(), err), "its members' peer URLs", b.cfg.PeerTLS)
	}
	joined, err := b.joiner(b.base.Self).join(ctx, ms)
	if err != nil {
		return Plan{}, err
	}
	p.Members, p.State, p.Joined, p.Handover = joined, "existing", true, Handover{}
	return p, nil
}

func (b *bootstrap) joiner(self Member) joiner {
	return joiner{self: self, as: b.cfg.JoinAs, replace: b.cfg.Replace, peers: b.deps.Peers, dial: b.deps.Cluster, auth: b.cfg.ClusterAuth, clock: b.deps.Clock, log: b.log}
}

// finish publishes this host's records, writes the plan and, for a new
// cluster, lets the lead member start first. Publishing fails the run,
// except on the restart of an initialised member: DNS never keeps a member
// from restarting.
func (b *bootstrap) finish(ctx context.Context, p Plan) error {
	switch {
	case p.Source == SourceDataDir:
		if err := b.publish(ctx); err != nil {
			b.log.Warn("could not refresh this member's DNS records; restarting anyway", "err", err)
		}
	case p.Source != SourceSRV && p.Role == RoleMember:
		if err := b.publish(ctx); err != nil {
			return err
		}
	}
	if err := b.deps.Output.Write(p); err != nil {
		return err
	}
	b.log.Info("wrote environment file", "role", p.Role, "state", p.State, "source", p.Source, "initial_cluster", InitialCluster(p.Members))
	if p.Role == RoleMember && p.State == "new" && !p.Handover.set() {
		waitForLead(ctx, p.Members, p.Self, b.cfg.PeerWait, b.deps.Peers, b.deps.Clock, b.log)
	}
	return nil
}

// memberInitialized reports whether etcd's data dir holds a member, the
// same test etcd makes: WAL files under member/wal.
func memberInitialized(dataDir string) (bool, error) {
	wals, err := filepath.Glob(filepath.Join(dataDir, "member", "wal", "*.wal"))
	if err != nil {
		return false, err
	}
	if len(wals) > 0 {
		return true, nil
	}
	if _, err := os.Stat(dataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("%w: %w", ErrConfig, &FieldError{Field: "DataDir", Err: err})
	}
	return false, nil
}
