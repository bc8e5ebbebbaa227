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

// Role is what this host became.
type Role string

// The roles a bootstrap can end in.
const (
	RoleMember Role = "member" // one of the token's members
	RoleProxy  Role = "proxy"  // the token was full; an etcd v2 proxy
)

// state is the result of the last completed rendezvous, kept in the state
// directory so that a host that restarts needs neither the registry nor a new
// token. It is written only after the rendezvous completed.
type state struct {
	Discovery      string    `json:"discovery"`
	Name           string    `json:"name"`
	PeerURLs       []string  `json:"peer_urls"`
	Role           Role      `json:"role"`
	State          string    `json:"state,omitempty"` // "existing" after a join; "" means new
	InitialCluster string    `json:"initial_cluster"`
	Written        time.Time `json:"written"`
}

const stateFile = "state.json"

// loadState reads the cached result. A missing file is (nil, nil); a file
// that does not parse or fails validation is an error, since it was written
// by the agent and is not expected to change under it.
func loadState(dir string) (*state, error) {
	p := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state file %s is damaged (%v); remove it to let the agent ask the registry again", p, err)
	}
	if s.Role != RoleMember && s.Role != RoleProxy {
		return nil, fmt.Errorf("state file %s has unknown role %q; remove it to let the agent ask the registry again", p, s.Role)
	}
	if _, err := ParseCluster(s.InitialCluster); err != nil {
		return nil, fmt.Errorf("state file %s: %w; remove it to let the agent ask the registry again", p, err)
	}
	return &s, nil
}

// matches reports whether the cached result belongs to this host and token.
func (s *state) matches(discovery string, self Member) bool {
	return s != nil && s.Discovery == discovery && s.Name == self.Name && slices.Equal(s.PeerURLs, self.PeerURLs)
}

func saveState(dir string, s state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return envfile.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'), 0o644)
}
