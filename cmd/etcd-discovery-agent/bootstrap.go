package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"regexp"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/dnsupdate"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv2"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv3"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

// bootstrapFlags declares bootstrap's flags on fs into cfg.
func bootstrapFlags(b binder, cfg *agent.Config, onFull, joinAs, etcdBinary *string) {
	b.str(&cfg.Name, "Name", "name", shortHostname(), "member name (default: the short host name)")
	b.str(&cfg.DiscoveryToken, "DiscoveryToken", "discovery-token", "", "v3 discovery token (etcd 3.6's --discovery-token), kept in the etcd at --discovery-endpoints (any etcd from 3.4 on)")
	b.strs(&cfg.DiscoveryEndpoints, "DiscoveryEndpoints", "discovery-endpoints", "with --discovery-token: client URLs of the etcd that holds the token")
	b.str(&cfg.Discovery, "Discovery", "discovery", "", "instead of --discovery-token: v2 discovery URL, e.g. http://10.0.0.1:2379/v2/keys/discovery/<token> (an etcd 3.4/3.5 with --enable-v2, or a discovery.etcd.io-style service)")
	b.credentials(&cfg.DiscoveryAuth, "DiscoveryAuth", "discovery", "the registry", true, true)
	b.str(&cfg.DiscoverySRV, "DiscoverySRV", "discovery-srv", "", "instead of --discovery: form the cluster from the SRV records of this domain, as etcd's --discovery-srv (also with http records on etcd 3.4)")
	b.int(&cfg.Size, "Size", "size", 0, "with --discovery-srv: wait, within --timeout, until the records show this many members")
	b.strs(&cfg.DNSResolvers, "DNSResolvers", "dns-resolver", "with --discovery-srv: DNS servers to ask, IP or IP:PORT (default: /etc/resolv.conf)")
	b.str(&cfg.ClusterToken, "ClusterToken", "cluster-token", "etcd-cluster", "with --discovery-srv: ETCD_INITIAL_CLUSTER_TOKEN (etcd's own SRV bootstrap uses --initial-cluster-token, default etcd-cluster)")
	b.str(&cfg.Output, "Output", "output", "static", "what the env file tells etcd: static (ETCD_INITIAL_CLUSTER, any etcd), or once the agent saw the source complete, for an etcd that runs its own discovery: discovery-token (ETCD_DISCOVERY_TOKEN, etcd 3.6+), discovery (ETCD_DISCOVERY, etcd 3.4-3.6; the agent does not register), discovery-srv (ETCD_DISCOVERY_SRV)")
	b.str(&cfg.AdvertiseAddress, "AdvertiseAddress", "advertise-address", agent.DefaultAddressTemplate, "address peers and clients reach this host at: an IP literal or a go-sockaddr template that yields exactly one address")
	b.str(&cfg.ListenAddress, "ListenAddress", "listen-address", "", "address etcd listens on (IP literal or template; default: the advertise address)")
	b.int(&cfg.PeerPort, "PeerPort", "peer-port", 2380, "etcd peer port")
	b.int(&cfg.ClientPort, "ClientPort", "client-port", 2379, "etcd client port")
	b.str(&cfg.Scheme, "Scheme", "scheme", "http", "URL scheme of peer and client URLs: http or https")
	b.flag(&cfg.ListenLoopback, "ListenLoopback", "listen-loopback", "also listen for clients on loopback, so a local etcdctl works")
	b.str(&cfg.DataDir, "DataDir", "data-dir", "/var/lib/etcd/default", "etcd's data dir; if it holds a member, the registry is not contacted")
	b.str(&cfg.EnvFile, "EnvFile", "env-file", "/run/etcd-discovery-agent/etcd.env", "environment file to write for etcd's EnvironmentFile=")
	b.str(&cfg.StateDir, "StateDir", "state-dir", "/var/lib/etcd-discovery-agent", "persistent directory caching the rendezvous result for restarts")
	b.dur(&cfg.Timeout, "Timeout", "timeout", 10*time.Minute, "overall deadline, including the wait for the token to fill")
	b.str(onFull, "OnFull", "on-full", "exit", "when the token is full without this host: exit, proxy (an etcd v2 proxy; etcd 3.4/3.5 only), or join (add this host to the token's running cluster)")
	b.str(joinAs, "JoinAs", "join-as", "learner", "how a host joins a running cluster: learner (promote makes it a voter once it caught up; run 'promote' after etcd started) or voter")
	b.flag(&cfg.Replace, "Replace", "replace", "when joining, remove a member that holds this host's name or peer URL (a host that lost its data dir), if, and only if, its peer port does not answer")
	b.credentials(&cfg.ClusterAuth, "ClusterAuth", "cluster", "the running cluster's client URLs (join, promote, the lock)", true, false)
	b.credentials(&cfg.PeerTLS, "PeerTLS", "peer", "the members' peer URLs (the member-list probe, the ordered start)", false, false)
	b.dur(&cfg.PeerWait, "PeerWait", "peer-wait", 5*time.Second, "at most this long, wait until the member with the lowest peer URL serves before returning (0 disables)")
	b.str(etcdBinary, "EtcdBinary", "etcd-binary", "/usr/bin/etcd", "local etcd binary, asked for its version when --output or --on-full=proxy depends on it")
	b.str(&cfg.EtcdVersion, "EtcdVersion", "etcd-version", "", "the local etcd's version (e.g. 3.7.3), instead of asking --etcd-binary")
	b.dns(&cfg.DNS)
	b.str(&cfg.DNS.Check, "DNS.Check", "dns-check", "error", "after publishing, check the records as etcd's SRV discovery will: error, warn or off")
}

// agentCommand is a command that takes bootstrap's flags.
type agentCommand struct {
	cfg        agent.Config
	names      flags
	log        *slog.Logger
	etcdBinary string
}

// parseAgentCommand parses bootstrap's flags for command name. It returns
// the exit code to stop with, or -1 to go on.
func parseAgentCommand(name string, args []string, stdout, stderr io.Writer, env lookupEnv) (*agentCommand, int) {
	c := &agentCommand{}
	var onFull, joinAs, logLevel string
	fs := newFlagSet(name, name+" [flags]")
	b := newBinder(fs)
	bootstrapFlags(b, &c.cfg, &onFull, &joinAs, &c.etcdBinary)
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if code := parseCommand(fs, args, nil, stdout, stderr, env); code >= 0 {
		return nil, code
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return nil, usageError(stderr, name, "%v", err)
	}
	c.cfg.OnFull, c.cfg.JoinAs = agent.OnFull(onFull), agent.JoinAs(joinAs)
	c.names, c.log = b.names, log
	return c, -1
}

func runBootstrap(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	c, code := parseAgentCommand("bootstrap", args, stdout, stderr, env)
	if code >= 0 {
		return code
	}
	cfg, log := c.cfg, c.log
	if cfg.EtcdVersion == "" && (cfg.OnFull == agent.OnFullProxy || cfg.Output != agent.OutputStatic) {
		v, err := etcdVersion(ctx, c.etcdBinary)
		if err != nil {
			return c.names.fail(stderr, log, "bootstrap", fmt.Errorf("%w: %w", agent.ErrConfig, &agent.FieldError{Field: "EtcdBinary", Err: err}))
		}
		cfg.EtcdVersion = v
	}
	// Everything is checked before anything is written: the settings,
	// then the files they name, then (in Bootstrap) the addresses and the
	// env file this host gets.
	if err := cfg.Validate(); err != nil {
		return c.names.fail(stderr, log, "bootstrap", err)
	}
	deps, err := bootstrapDeps(&cfg, log)
	if err != nil {
		return c.names.fail(stderr, log, "bootstrap", err)
	}
	plan, err := agent.Bootstrap(ctx, cfg, deps)
	if err != nil {
		return c.names.fail(stderr, log, "bootstrap", err)
	}
	log.Info("done", "role", plan.Role, "state", plan.State, "source", plan.Source, "env_file", cfg.EnvFile)
	return exitOK
}

// bootstrapDeps builds the parts of a bootstrap that do I/O from cfg: it
// reads the key, certificate and password files, and connects nowhere.
func bootstrapDeps(cfg *agent.Config, log *slog.Logger) (agent.Deps, error) {
	deps := agent.Deps{
		Output: agent.EnvFile{Path: cfg.EnvFile, Version: versionString()},
		Clock:  agent.SystemClock{},
		Log:    log,
	}
	cluster, err := cfg.ClusterAuth.Load("ClusterAuth", log)
	if err != nil {
		return deps, err
	}
	peer, err := cfg.PeerTLS.Load("PeerTLS", log)
	if err != nil {
		return deps, err
	}
	deps.Cluster, deps.Peers = etcdv3.Dialer(cluster), agent.Peers{TLS: peer.TLS}
	switch {
	case cfg.Discovery != "":
		if deps.Registry, err = v2Registry(cfg.Discovery, cfg.DiscoveryAuth, log); err != nil {
			return deps, err
		}
	case cfg.DiscoveryToken != "":
		if deps.Registry, err = v3Registry(cfg.DiscoveryEndpoints, cfg.DiscoveryToken, cfg.DiscoveryAuth, log); err != nil {
			return deps, err
		}
	default:
		r, err := resolver.New(cfg.DNSResolvers, "/etc/resolv.conf")
		if err != nil {
			return deps, fmt.Errorf("%w: %w", agent.ErrConfig, &agent.FieldError{Field: "DNSResolvers", Err: err})
		}
		deps.Resolver = r
	}
	if cfg.DNS.Enabled() {
		u, err := updater(cfg.DNS, log)
		if err != nil {
			return deps, err
		}
		deps.Publisher = u
	}
	return deps, nil
}

// v2Registry is the registry of a v2 token, reached with creds.
func v2Registry(discovery string, creds agent.Credentials, log *slog.Logger) (*etcdv2.Registry, error) {
	access, err := creds.Load("DiscoveryAuth", log)
	if err != nil {
		return nil, err
	}
	reg, err := etcdv2.New(discovery, access)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", agent.ErrConfig, &agent.FieldError{Field: "Discovery", Err: err})
	}
	return reg, nil
}

// v3Registry is the registry of a v3 token, reached with creds; it
// connects on its first request.
func v3Registry(endpoints []string, token string, creds agent.Credentials, log *slog.Logger) (*etcdv3.Registry, error) {
	access, err := creds.Load("DiscoveryAuth", log)
	if err != nil {
		return nil, err
	}
	reg, err := etcdv3.NewRegistry(endpoints, token, access)
	if err != nil {
		return nil, err
	}
	return reg, nil
}

// updater is the RFC 2136 publisher of d, with its TSIG key read.
func updater(d agent.DNSConfig, log *slog.Logger) (*dnsupdate.Updater, error) {
	key, err := dnsupdate.ReadKeyFile(d.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", agent.ErrConfig, &agent.FieldError{Field: "DNS.KeyFile", Err: err})
	}
	agent.WarnExposed(log, "DNS.KeyFile", d.KeyFile)
	return &dnsupdate.Updater{Server: d.Server, Zone: d.Zone, Key: key}, nil
}

var etcdVersionRE = regexp.MustCompile(`etcd Version: (\d+\.\d+\.\d+)`)

// etcdVersion asks the local etcd binary for its version.
func etcdVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("cannot ask %s for its version: %w; give the etcd binary this host runs, or its version with --etcd-version", bin, err)
	}
	m := etcdVersionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("cannot ask %s for its version: its --version printed no 'etcd Version:' line; give the etcd binary this host runs, or its version with --etcd-version", bin)
	}
	return string(m[1]), nil
}

// runPromote makes this host's learner a voter; it takes bootstrap's
// flags, so that one configuration serves both (ExecStartPre= and
// ExecStartPost= of etcd's unit).
func runPromote(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	c, code := parseAgentCommand("promote", args, stdout, stderr, env)
	if code >= 0 {
		return code
	}
	cluster, err := c.cfg.ClusterAuth.Load("ClusterAuth", c.log)
	if err != nil {
		return c.names.fail(stderr, c.log, "promote", err)
	}
	peer, err := c.cfg.PeerTLS.Load("PeerTLS", c.log)
	if err != nil {
		return c.names.fail(stderr, c.log, "promote", err)
	}
	deps := agent.Deps{Cluster: etcdv3.Dialer(cluster), Peers: agent.Peers{TLS: peer.TLS}, Clock: agent.SystemClock{}, Log: c.log}
	if err := agent.Promote(ctx, c.cfg, deps); err != nil {
		return c.names.fail(stderr, c.log, "promote", err)
	}
	return exitOK
}
