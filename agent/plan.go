package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/envfile"
)

// Role is what this host became.
type Role string

// The roles a bootstrap can end in.
const (
	RoleMember Role = "member" // a member of the cluster
	RoleProxy  Role = "proxy"  // the token was full; an etcd v2 proxy
)

// Where a plan's cluster came from.
const (
	SourceRegistry = "registry" // a rendezvous on the token
	SourceCache    = "cache"    // the cached result of an earlier rendezvous
	SourceDataDir  = "data-dir" // an initialised member restarts
	SourceSRV      = "dns-srv"  // SRV records
)

// Plan is what a bootstrap decided: how this host's etcd starts. An Output
// renders it.
type Plan struct {
	Role   Role
	State  string // ETCD_INITIAL_CLUSTER_STATE: "new" or "existing"
	Source string // where the cluster came from: SourceRegistry, ...
	// Self is this host as the cluster names it: by its advertised peer
	// URLs, or in SRV mode by its SRV target.
	Self Member
	// Members is the cluster in registration order. It is empty only for
	// an initialised member whose cluster the agent does not know (etcd
	// reads it from its WAL).
	Members      []Member
	ClusterToken string // ETCD_INITIAL_CLUSTER_TOKEN
	Host         Host
	// Handover, when set, makes a new member's etcd run its own discovery
	// (Config.Output other than static) instead of reading the member list.
	Handover Handover
	Joined   bool // this host joined a running cluster
}

// Handover is the discovery a new member's etcd runs itself, on a source
// the agent saw complete: at most one of SRV, URL and Token is set.
type Handover struct {
	SRV, SRVName string // ETCD_DISCOVERY_SRV[_NAME]: SRV records
	URL          string // ETCD_DISCOVERY: a v2 token
	// ETCD_DISCOVERY_TOKEN and ETCD_DISCOVERY_ENDPOINTS: a v3 token, and
	// the files (never a password) etcd reaches its registry with.
	Token     string
	Endpoints []string
	TLS       Credentials
}

func (h Handover) set() bool { return h.SRV != "" || h.URL != "" || h.Token != "" }

func (h Handover) vars() []envfile.Var {
	var vs []envfile.Var
	add := func(name, value string) {
		if value != "" {
			vs = append(vs, envfile.Var{Name: name, Value: value})
		}
	}
	add("ETCD_DISCOVERY_SRV", h.SRV)
	add("ETCD_DISCOVERY_SRV_NAME", h.SRVName)
	add("ETCD_DISCOVERY", h.URL)
	if h.URL != "" {
		add("ETCD_DISCOVERY_FALLBACK", "exit") // 3.4 and 3.5 would become a v2 proxy
	}
	add("ETCD_DISCOVERY_TOKEN", h.Token)
	add("ETCD_DISCOVERY_ENDPOINTS", strings.Join(h.Endpoints, ","))
	add("ETCD_DISCOVERY_CACERT", h.TLS.CACert)
	add("ETCD_DISCOVERY_CERT", h.TLS.Cert)
	add("ETCD_DISCOVERY_KEY", h.TLS.Key)
	if h.TLS.InsecureSkipVerify {
		add("ETCD_DISCOVERY_INSECURE_SKIP_TLS_VERIFY", "true")
	}
	add("ETCD_DISCOVERY_USER", h.TLS.User)
	return vs
}

// Host is what etcd needs of this host beside the cluster.
type Host struct {
	Name              string
	AdvertisePeerURLs []string
	ListenPeerURL     string
	AdvertiseClient   string
	ListenClientURLs  []string
	DataDir           string
}

// Check enforces what must hold of every plan before it is rendered: a
// member's cluster holds this member exactly once, with its own peer URLs,
// and no other member has its name or a peer URL of it.
func (p Plan) Check() error {
	if p.Role == RoleProxy {
		if len(p.Members) == 0 {
			return fmt.Errorf("proxy without a cluster to forward to")
		}
		return nil
	}
	if p.State != "new" && p.State != "existing" {
		return fmt.Errorf("cluster state %q", p.State)
	}
	if len(p.Members) == 0 {
		if p.Source != SourceDataDir && !p.Handover.set() {
			return fmt.Errorf("no member list")
		}
		return nil
	}
	n := 0
	for _, m := range p.Members {
		same := m.Name == p.Self.Name
		shares := slices.ContainsFunc(m.PeerURLs, func(u string) bool { return slices.Contains(p.Self.PeerURLs, u) })
		switch {
		case same && slices.Equal(m.PeerURLs, p.Self.PeerURLs):
			n++
		case same || shares:
			return fmt.Errorf("the member list names %s=%s, which clashes with this host, %s=%s", m.Name, strings.Join(m.PeerURLs, ","), p.Self.Name, strings.Join(p.Self.PeerURLs, ","))
		}
	}
	if n != 1 {
		return fmt.Errorf("the member list %s does not hold this host (%s) exactly once", InitialCluster(p.Members), p.Self.RegistryValue())
	}
	return nil
}

// describe says in words what the plan makes of this host.
func (p Plan) describe() string {
	switch {
	case p.Role == RoleProxy:
		return "v2 proxy: the token was full"
	case p.Source == SourceDataDir:
		return "restart of an initialised member"
	case p.Joined:
		return fmt.Sprintf("member %d of %d, joining the running cluster", position(p.Members, p.Self)+1, len(p.Members))
	}
	return fmt.Sprintf("member %d of a new %d-member cluster", position(p.Members, p.Self)+1, len(p.Members))
}

func position(members []Member, self Member) int {
	return slices.IndexFunc(members, func(m Member) bool { return m.Name == self.Name })
}

// EnvVars renders the plan as etcd's environment.
func (p Plan) EnvVars() []envfile.Var {
	h := p.Host
	if p.Role == RoleProxy {
		return []envfile.Var{
			{Name: "ETCD_NAME", Value: h.Name},
			{Name: "ETCD_DATA_DIR", Value: h.DataDir},
			{Name: "ETCD_PROXY", Value: "on"},
			{Name: "ETCD_LISTEN_CLIENT_URLS", Value: strings.Join(h.ListenClientURLs, ",")},
			{Name: "ETCD_ADVERTISE_CLIENT_URLS", Value: h.AdvertiseClient},
			{Name: "ETCD_INITIAL_CLUSTER", Value: InitialCluster(p.Members)},
		}
	}
	vars := []envfile.Var{
		{Name: "ETCD_NAME", Value: h.Name},
		{Name: "ETCD_DATA_DIR", Value: h.DataDir},
		{Name: "ETCD_INITIAL_ADVERTISE_PEER_URLS", Value: strings.Join(h.AdvertisePeerURLs, ",")},
		{Name: "ETCD_LISTEN_PEER_URLS", Value: h.ListenPeerURL},
		{Name: "ETCD_ADVERTISE_CLIENT_URLS", Value: h.AdvertiseClient},
		{Name: "ETCD_LISTEN_CLIENT_URLS", Value: strings.Join(h.ListenClientURLs, ",")},
	}
	switch {
	case p.Handover.set() && p.State == "new":
		// etcd runs its own discovery; the agent only waited until the
		// source was complete.
		vars = append(vars, p.Handover.vars()...)
	case len(p.Members) > 0:
		vars = append(vars, envfile.Var{Name: "ETCD_INITIAL_CLUSTER", Value: InitialCluster(p.Members)})
	}
	return append(vars,
		envfile.Var{Name: "ETCD_INITIAL_CLUSTER_STATE", Value: p.State},
		envfile.Var{Name: "ETCD_INITIAL_CLUSTER_TOKEN", Value: p.ClusterToken},
	)
}

// Output renders a plan for etcd.
type Output interface {
	// Check renders p without writing it, and fails as Write would.
	Check(p Plan) error
	// Write renders p and puts it where etcd reads it, whole or not at
	// all.
	Write(p Plan) error
}

// EnvFile is the Output for etcd's EnvironmentFile=: the plan as
// ETCD_* variables, in the syntax systemd and sh read alike, written
// atomically.
type EnvFile struct {
	Path    string
	Version string // the agent's, for the file's header
	Clock   Clock
}

// Check renders p and makes sure the file's directory takes a file, so
// that Write, later, fails only on what cannot be foreseen.
func (f EnvFile) Check(p Plan) error {
	if _, err := f.render(p); err != nil {
		return err
	}
	if err := writable(f.Path); err != nil {
		return fmt.Errorf("env file: %w", err)
	}
	return nil
}

// writable checks that a file can be written at path: its directory
// exists or can be made, and takes a new file.
func writable(path string) error {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a regular file", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %w", dir, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// Write renders p and replaces the file atomically.
func (f EnvFile) Write(p Plan) error {
	data, err := f.render(p)
	if err != nil {
		return err
	}
	return envfile.WriteFile(f.Path, data, 0o644)
}

func (f EnvFile) render(p Plan) ([]byte, error) {
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("refusing to write an env file: %w", err)
	}
	now := time.Now()
	if f.Clock != nil {
		now = f.Clock.Now()
	}
	comments := []string{
		"Written by etcd-discovery-agent " + f.Version + " at " + now.UTC().Format(time.RFC3339) + ".",
		"Role: " + p.describe() + ".",
		"Rewritten each time the agent runs; do not edit.",
	}
	data, err := envfile.Render(comments, p.EnvVars())
	if err != nil {
		return nil, fmt.Errorf("the env file cannot carry this: %w", err)
	}
	return data, nil
}
