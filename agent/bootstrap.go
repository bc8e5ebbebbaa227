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
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/envfile"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/registry"
)

// Result tells what a bootstrap decided and wrote.
type Result struct {
	Role    Role
	State   string   // ETCD_INITIAL_CLUSTER_STATE written: "new" or "existing"
	Source  string   // "registry", "cache" (earlier rendezvous) or "data-dir" (initialised member)
	Members []Member // the cluster, in registration order; nil when unknown
	EnvFile string
}

// Bootstrap runs the whole ExecStartPre job: resolve addresses, decide from
// the data dir, the cached result or the registry what this host is, and
// write the environment file. It returns an error, and writes nothing,
// whenever it cannot write a file from which etcd would start correctly.
func Bootstrap(ctx context.Context, cfg Config, version string, log *slog.Logger) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	adv, listen, err := cfg.addresses()
	if err != nil {
		return nil, err
	}
	self := Member{Name: cfg.Name, PeerURLs: []string{HostURL(cfg.Scheme, adv, cfg.PeerPort)}}
	log = log.With("name", self.Name)
	log.Info("starting", "peer_url", self.PeerURLs[0], "listen", listen.String(), "discovery", cfg.Discovery)

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	cached, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cached != nil && !cached.matches(cfg.source(), self) {
		log.Info("ignoring the cached result of another token or host identity", "cached_token", cached.Discovery, "cached_name", cached.Name)
		cached = nil
	}

	w := envWriter{cfg: cfg, self: self, adv: adv, listen: listen, version: version}
	publishDNS := func() error {
		if !cfg.DNS.Enabled() {
			return nil
		}
		return publish(ctx, cfg.DNS, dnsHost(cfg.DNS, self.Name, cfg.Scheme, adv, cfg.PeerPort, cfg.ClientPort), log)
	}

	initialized, err := memberInitialized(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if initialized {
		// etcd ignores every bootstrap setting once its WAL exists; the
		// registry is not needed, and must not be, for a restart.
		res := &Result{Role: RoleMember, State: "existing", Source: "data-dir", EnvFile: cfg.EnvFile}
		cluster := ""
		if cached != nil && cached.Role == RoleMember {
			cluster = cached.InitialCluster
			res.Members, _ = ParseCluster(cluster)
		} else {
			log.Warn("data dir holds a member but no cached member list matches; writing the env file without ETCD_INITIAL_CLUSTER")
		}
		log.Info("data dir already holds an initialised member; not contacting the registry", "data_dir", cfg.DataDir)
		// Keep DNS in line with this host (its address may have changed),
		// but never let a DNS outage keep a member from restarting.
		if err := publishDNS(); err != nil {
			log.Warn("could not refresh this member's DNS records; restarting anyway", "err", err)
		}
		return res, w.member(cluster, "existing", "restart of an initialised member")
	}

	var out outcome
	source := "cache"
	if cached != nil {
		log.Info("using the cached result of the earlier rendezvous on this token", "role", cached.Role, "written", cached.Written.Format(time.RFC3339))
		out.members, _ = ParseCluster(cached.InitialCluster)
		out.size = len(out.members)
		out.full = cached.Role == RoleProxy
		out.joined = cached.State == "existing"
	} else if cfg.DiscoverySRV != "" {
		source = "dns-srv"
		// Publish first, so that the other members see this one.
		if err := publishDNS(); err != nil {
			return nil, err
		}
		if out.members, out.addrs, err = srvCluster(ctx, cfg, self, log); err != nil {
			return nil, err
		}
		// The records may describe a cluster that runs already: then this
		// host is a later member and joins it.
		if err := srvJoin(ctx, &out, self, log); err != nil {
			return nil, err
		}
		if !out.joined && len(out.members) > cfg.Size {
			log.Warn("SRV records show more members than --size; using them all", "have", len(out.members), "size", cfg.Size)
		}
		out.size = len(out.members)
	} else {
		source = "registry"
		reg, err := registry.New(cfg.Discovery, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: --discovery: %w", ErrConfig, err)
		}
		if out, err = newRendezvous(reg, self, log).run(ctx); err != nil {
			return nil, err
		}
	}
	cluster := InitialCluster(out.members)
	saveResult := func(role Role) error {
		if source == "cache" {
			return nil
		}
		st := state{Discovery: cfg.source(), Name: self.Name, PeerURLs: self.PeerURLs, Role: role, InitialCluster: cluster, Written: time.Now().UTC()}
		if out.joined {
			st.State = "existing"
		}
		return saveState(cfg.StateDir, st)
	}

	if out.full && cfg.OnFull == OnFullJoin {
		if err := tokenJoin(ctx, &out, self, cfg.Discovery, log); err != nil {
			return nil, err
		}
		cluster = InitialCluster(out.members)
	}
	if out.full {
		names := make([]string, len(out.members))
		for i, m := range out.members {
			names[i] = m.Name
		}
		if cfg.OnFull != OnFullProxy {
			return nil, fmt.Errorf("%w: %s already has its %d members (%s) and this host is not one of them; use a new token, let it join the running cluster with --on-full=join, or run it as a proxy with --on-full=proxy",
				ErrTokenFull, cfg.Discovery, out.size, strings.Join(names, ", "))
		}
		log.Info("token is full; this host becomes a v2 proxy", "members", strings.Join(names, ","))
		if err := saveResult(RoleProxy); err != nil {
			return nil, err
		}
		return &Result{Role: RoleProxy, Source: source, Members: out.members, EnvFile: cfg.EnvFile}, w.proxy(cluster)
	}

	if source != "dns-srv" {
		if err := publishDNS(); err != nil {
			return nil, err
		}
	}
	if err := saveResult(RoleMember); err != nil {
		return nil, err
	}
	clusterState, what := "new", fmt.Sprintf("member %d of a new %d-member cluster", position(out.members, self)+1, len(out.members))
	if out.joined {
		clusterState, what = "existing", fmt.Sprintf("member %d of %d, joining the running cluster", position(out.members, self)+1, len(out.members))
	}
	if err := w.member(cluster, clusterState, what); err != nil {
		return nil, err
	}
	log.Info("wrote environment file", "path", cfg.EnvFile, "state", clusterState, "initial_cluster", cluster)
	if !out.joined && (cfg.DiscoverySRV == "" || cfg.Output == "static") {
		waitForLead(ctx, out.members, self, cfg.PeerWait, out.addrs, log)
	}
	return &Result{Role: RoleMember, State: clusterState, Source: source, Members: out.members, EnvFile: cfg.EnvFile}, nil
}

func position(members []Member, self Member) int {
	for i, m := range members {
		if m.Name == self.Name {
			return i
		}
	}
	return -1
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
		return false, fmt.Errorf("inspect --data-dir: %w", err)
	}
	return false, nil
}

// envWriter renders and writes the environment file for this host.
type envWriter struct {
	cfg         Config
	self        Member
	adv, listen netip.Addr
	version     string
}

func (w envWriter) clientURLs() (listen, advertise string) {
	urls := []string{HostURL(w.cfg.Scheme, w.listen, w.cfg.ClientPort)}
	if w.cfg.ListenLoopback && !w.listen.IsLoopback() && !w.listen.IsUnspecified() {
		lo := netip.MustParseAddr("127.0.0.1")
		if w.listen.Is6() {
			lo = netip.IPv6Loopback()
		}
		urls = append(urls, HostURL(w.cfg.Scheme, lo, w.cfg.ClientPort))
	}
	return strings.Join(urls, ","), HostURL(w.cfg.Scheme, w.adv, w.cfg.ClientPort)
}

func (w envWriter) member(cluster, clusterState, what string) error {
	listenClient, advClient := w.clientURLs()
	vars := []envfile.Var{
		{Name: "ETCD_NAME", Value: w.self.Name},
		{Name: "ETCD_DATA_DIR", Value: w.cfg.DataDir},
		{Name: "ETCD_INITIAL_ADVERTISE_PEER_URLS", Value: strings.Join(w.self.PeerURLs, ",")},
		{Name: "ETCD_LISTEN_PEER_URLS", Value: HostURL(w.cfg.Scheme, w.listen, w.cfg.PeerPort)},
		{Name: "ETCD_ADVERTISE_CLIENT_URLS", Value: advClient},
		{Name: "ETCD_LISTEN_CLIENT_URLS", Value: listenClient},
	}
	switch {
	case w.cfg.DiscoverySRV != "" && w.cfg.Output == "discovery-srv" && clusterState == "new":
		// etcd reads the SRV records itself; the agent only waited until
		// they were complete.
		vars = append(vars, envfile.Var{Name: "ETCD_DISCOVERY_SRV", Value: strings.TrimSuffix(dnsName(w.cfg.DiscoverySRV), ".")})
		if w.cfg.DNS.SRVName != "" {
			vars = append(vars, envfile.Var{Name: "ETCD_DISCOVERY_SRV_NAME", Value: w.cfg.DNS.SRVName})
		}
	case cluster != "":
		vars = append(vars, envfile.Var{Name: "ETCD_INITIAL_CLUSTER", Value: cluster})
	}
	vars = append(vars,
		envfile.Var{Name: "ETCD_INITIAL_CLUSTER_STATE", Value: clusterState},
		envfile.Var{Name: "ETCD_INITIAL_CLUSTER_TOKEN", Value: w.cfg.clusterToken()},
	)
	return w.write(what, vars)
}

func (w envWriter) proxy(cluster string) error {
	listenClient, advClient := w.clientURLs()
	return w.write("v2 proxy: the token was full", []envfile.Var{
		{Name: "ETCD_NAME", Value: w.self.Name},
		{Name: "ETCD_DATA_DIR", Value: w.cfg.DataDir},
		{Name: "ETCD_PROXY", Value: "on"},
		{Name: "ETCD_LISTEN_CLIENT_URLS", Value: listenClient},
		{Name: "ETCD_ADVERTISE_CLIENT_URLS", Value: advClient},
		{Name: "ETCD_INITIAL_CLUSTER", Value: cluster},
	})
}

func (w envWriter) write(what string, vars []envfile.Var) error {
	comments := []string{
		"Written by etcd-discovery-agent " + w.version + " at " + time.Now().UTC().Format(time.RFC3339) + ".",
		"Role: " + what + ".",
		"Rewritten each time the agent runs; do not edit.",
	}
	data, err := envfile.Render(comments, vars)
	if err != nil {
		// Everything that reaches here was validated; refuse rather than
		// write a file that systemd and sh could read differently.
		return fmt.Errorf("%w: environment file: %w", ErrConfig, err)
	}
	if err := envfile.WriteFile(w.cfg.EnvFile, data, 0o644); err != nil {
		return err
	}
	return nil
}
