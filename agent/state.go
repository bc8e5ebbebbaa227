package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/envfile"
)

// state is the result of the last completed rendezvous, kept in the state
// directory so that a host that restarts needs neither the registry nor a
// new token. It is an optimisation: the data dir decides whether a member
// is initialised, and a cache that cannot be read, or belongs to another
// name, peer URL or token, is ignored with a warning.
type state struct {
	Discovery      string    `json:"discovery"`       // Config.source(): the token or SRV domain
	Name           string    `json:"name"`            // this host's name
	PeerURLs       []string  `json:"peer_urls"`       // this host's advertised peer URLs
	Self           string    `json:"self"`            // this host as the cluster names it (name=url,...)
	Role           Role      `json:"role"`            // member or proxy
	State          string    `json:"state,omitempty"` // "existing" after a join; "" means new
	InitialCluster string    `json:"initial_cluster"` // the cluster, name=url,...
	Written        time.Time `json:"written"`
}

const stateFile = "state.json"

// loadCache reads the cached result for this host and token. It returns
// nil, with a warning, when there is none it can use.
func (b *bootstrap) loadCache() *state {
	p := filepath.Join(b.cfg.StateDir, stateFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var s state
	if err == nil {
		err = json.Unmarshal(data, &s)
	}
	if err == nil {
		err = s.check()
	}
	switch {
	case err != nil:
		b.log.Warn("ignoring the state cache: it cannot be used", "path", p, "err", err)
		return nil
	case s.Discovery != b.cfg.source() || s.Name != b.cfg.Name || !slices.Equal(s.PeerURLs, b.base.Self.PeerURLs):
		b.log.Warn("ignoring the state cache: it belongs to another token or host identity", "path", p,
			"cached_token", Quote(s.Discovery), "cached_name", Quote(s.Name), "cached_peer_urls", s.PeerURLs)
		return nil
	}
	return &s
}

// check validates a cache read from disk as strictly as registry data.
func (s *state) check() error {
	if s.Role != RoleMember && s.Role != RoleProxy {
		return fmt.Errorf("unknown role %s", Quote(string(s.Role)))
	}
	if s.State != "" && s.State != "existing" {
		return fmt.Errorf("unknown state %s", Quote(s.State))
	}
	members, err := ParseCluster(s.InitialCluster)
	if err != nil {
		return err
	}
	if s.Role == RoleProxy {
		return nil
	}
	self, err := ParseCluster(s.Self)
	if err != nil || len(self) != 1 {
		return fmt.Errorf("self %s is not one member", Quote(s.Self))
	}
	p := Plan{Role: RoleMember, State: "new", Self: self[0], Members: members}
	return p.Check()
}

// cluster is the cached member list and this host in it.
func (s *state) cluster() (members []Member, self Member) {
	members, _ = ParseCluster(s.InitialCluster)
	if ms, err := ParseCluster(s.Self); err == nil && len(ms) == 1 {
		self = ms[0]
	}
	return members, self
}

// saveCache keeps the plan's cluster for reruns. A cache that cannot be
// written costs only a registry round on the next run: it warns.
func (b *bootstrap) saveCache(p Plan) {
	s := state{
		Discovery: b.cfg.source(), Name: b.cfg.Name, PeerURLs: b.base.Self.PeerURLs,
		Self: p.Self.RegistryValue(), Role: p.Role, InitialCluster: InitialCluster(p.Members),
		Written: b.deps.Clock.Now().UTC(),
	}
	if p.Joined {
		s.State = "existing"
	}
	if p.Role == RoleProxy {
		s.Self = ""
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err == nil {
		err = envfile.WriteFile(filepath.Join(b.cfg.StateDir, stateFile), append(data, '\n'), 0o644)
	}
	if err != nil {
		b.log.Warn("could not cache the result; a rerun will ask the registry again", "err", err)
	}
}
