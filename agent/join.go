package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// peerMember is a member as etcd's peer API lists it (GET PEER-URL/members,
// served by every etcd 3.4 to 3.7 on its peer port from the moment it
// listens, before the cluster has a leader).
type peerMember struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
}

// started reports whether the member has run: etcd publishes a member's
// name and client URLs when it starts; a member added with member add
// has neither until then.
func (m peerMember) started() bool { return len(m.ClientURLs) > 0 }

// validate checks what the env file may take from a member: its name (or
// none, unstarted) and its URLs.
func (m peerMember) validate() error {
	if m.ID == 0 || len(m.PeerURLs) == 0 {
		return fmt.Errorf("member %x without an ID or peer URLs", m.ID)
	}
	if m.Name != "" {
		if err := ValidateName(m.Name); err != nil {
			return fmt.Errorf("member %x: %w", m.ID, err)
		}
	}
	for _, u := range append(slices.Clone(m.PeerURLs), m.ClientURLs...) {
		if err := ValidateURL(u); err != nil {
			return fmt.Errorf("member %x: %w", m.ID, err)
		}
	}
	return nil
}

// clusterClient talks to a running cluster: peer and client URLs whose
// host is in addrs (lower case) are dialled at that address, others are
// resolved as usual; each request is bounded by timeout.
func clusterClient(addrs map[string]netip.Addr, timeout time.Duration) *http.Client {
	var dialer net.Dialer
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err == nil {
					if ip, ok := addrs[strings.ToLower(host)]; ok {
						addr = net.JoinHostPort(ip.String(), port)
					}
				}
				return dialer.DialContext(ctx, network, addr)
			},
		},
	}
}

// membership asks the peers (peer URLs, all at once) for the cluster's
// member list and returns the first valid answer; nil without an error
// when none answered (no member runs).
func membership(ctx context.Context, client *http.Client, peers []string) ([]peerMember, error) {
	type answer struct {
		members []peerMember
		err     error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan answer, len(peers))
	for _, p := range peers {
		go func() {
			ms, err := fetchMembers(ctx, client, p)
			answers <- answer{ms, err}
		}()
	}
	var invalid error
	for range peers {
		a := <-answers
		switch {
		case a.err == nil:
			return a.members, nil
		case errors.Is(a.err, errInvalidMembers):
			invalid = a.err
		}
	}
	return nil, invalid
}

var errInvalidMembers = errors.New("invalid member list")

func fetchMembers(ctx context.Context, client *http.Client, peer string) ([]peerMember, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(peer, "/")+"/members", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/members: %s", peer, Clip(resp.Status))
	}
	var ms []peerMember
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ms); err != nil {
		return nil, fmt.Errorf("%w from %s/members: %v", errInvalidMembers, peer, err)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w from %s/members: empty", errInvalidMembers, peer)
	}
	for _, m := range ms {
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("%w from %s/members: %w", errInvalidMembers, peer, err)
		}
	}
	return ms, nil
}

// memberWith returns the member one of whose peer URLs is u.
func memberWith(ms []peerMember, u string) (peerMember, bool) {
	for _, m := range ms {
		if slices.Contains(m.PeerURLs, u) {
			return m, true
		}
	}
	return peerMember{}, false
}

// joinState is what a running cluster's member list says of this host.
type joinState int

const (
	joinAdd     joinState = iota // not a member: add it
	joinResume                   // added earlier (by an agent run that did not finish), not started
	joinInitial                  // in the cluster's initial member list: a new cluster still forming
	joinTaken                    // a started member already has this peer URL
)

func classify(ms []peerMember, peerURL string) (joinState, peerMember) {
	m, ok := memberWith(ms, peerURL)
	switch {
	case !ok:
		return joinAdd, m
	case m.started():
		return joinTaken, m
	case m.Name == "":
		return joinResume, m
	}
	return joinInitial, m
}

// joinCluster adds this host as a member of the running cluster whose
// member list ms is (peerURL is the URL the cluster will know it by), unless
// an earlier run added it already, and returns the member list for
// ETCD_INITIAL_CLUSTER with state existing. Members added but not started
// yet (another host joining) are named by their ID in hex.
func joinCluster(ctx context.Context, client *http.Client, ms []peerMember, self Member, peerURL string, log *slog.Logger) ([]Member, error) {
	state, m := classify(ms, peerURL)
	switch state {
	case joinTaken:
		return nil, fmt.Errorf("%w: peer URL %s belongs to member %q (%x) of the running cluster, which has started; if this host lost its data dir, remove that member (etcdctl member remove %x) and run again",
			ErrConflict, peerURL, m.Name, m.ID, m.ID)
	case joinResume:
		log.Info("this host was added to the running cluster by an earlier run; not adding it again", "member_id", fmt.Sprintf("%x", m.ID))
		return joinedMembers(ms, m.ID, self.Name), nil
	}
	id, list, err := addMember(ctx, client, ms, peerURL, log)
	if errors.Is(err, errPeerURLExists) {
		// An earlier try got through but its answer was lost, or another
		// host added this URL in the meantime.
		again, ferr := membership(ctx, client, peerURLsOf(ms))
		if ferr != nil || again == nil {
			return nil, fmt.Errorf("member add: %w; and the member list could not be read again: %v", err, ferr)
		}
		if st, m := classify(again, peerURL); st == joinResume {
			log.Info("this host's peer URL was added meanwhile; not adding it again", "member_id", fmt.Sprintf("%x", m.ID))
			return joinedMembers(again, m.ID, self.Name), nil
		}
		return nil, fmt.Errorf("%w: member add: %w, and the member list does not show it as added and unstarted", ErrConflict, err)
	}
	if err != nil {
		return nil, err
	}
	log.Info("added this host to the running cluster", "member_id", fmt.Sprintf("%x", id), "peer_url", peerURL)
	return joinedMembers(list, id, self.Name), nil
}

func peerURLsOf(ms []peerMember) []string {
	var urls []string
	for _, m := range ms {
		urls = append(urls, m.PeerURLs...)
	}
	return urls
}

// joinedMembers is the member list etcd needs to join: every member with
// its name, the new one (id) named selfName, unstarted others by their ID.
func joinedMembers(ms []peerMember, id uint64, selfName string) []Member {
	var out []Member
	for _, m := range ms {
		name := m.Name
		switch {
		case m.ID == id:
			name = selfName
		case name == "":
			name = fmt.Sprintf("%x", m.ID)
		}
		out = append(out, Member{Name: name, PeerURLs: slices.Clone(m.PeerURLs)})
	}
	return out
}

// srvJoin decides, once the SRV records describe the cluster (out), whether
// it runs already: it asks the other members for their member list. If one
// answers and this host is not in it (or was added by an earlier run), the
// host joins: out becomes the running cluster's member list, state
// existing. Nobody answering, or a list that has this host as an initial
// member, is a new cluster forming: out stays.
func srvJoin(ctx context.Context, out *outcome, self Member, log *slog.Logger) error {
	var selfURL string
	var others []string
	for _, m := range out.members {
		if m.Name == self.Name {
			selfURL = m.PeerURLs[0]
			continue
		}
		others = append(others, m.PeerURLs...)
	}
	if selfURL == "" || len(others) == 0 {
		return nil
	}
	client := clusterClient(out.addrs, time.Second)
	ms, err := membership(ctx, client, others)
	if err != nil {
		return fmt.Errorf("is the cluster in the SRV records running? %w", err)
	}
	if ms == nil {
		return nil
	}
	for _, u := range []string{selfURL, self.PeerURLs[0]} {
		if st, _ := classify(ms, u); st == joinInitial {
			return nil
		}
	}
	// A cluster formed from SRV records knows its members by target name,
	// one formed from a token (and published since) by address: join it
	// the way it knows the others.
	joinURL := selfURL
	if byAddress(ms) {
		joinURL = self.PeerURLs[0]
	}
	log.Info("the cluster in the SRV records runs already; joining it", "members", len(ms), "peer_url", joinURL)
	members, err := joinCluster(ctx, client, ms, self, joinURL, log)
	if err != nil {
		return err
	}
	out.members, out.joined = members, true
	return nil
}

// byAddress reports whether every member's peer URLs name IP addresses.
func byAddress(ms []peerMember) bool {
	for _, m := range ms {
		for _, s := range m.PeerURLs {
			u, err := url.Parse(s)
			if err != nil {
				return false
			}
			if _, err := netip.ParseAddr(u.Hostname()); err != nil {
				return false
			}
		}
	}
	return true
}

// tokenJoin adds this host to the running cluster of a full token (out):
// its members are asked for the member list on their peer URLs.
func tokenJoin(ctx context.Context, out *outcome, self Member, discovery string, log *slog.Logger) error {
	var peers []string
	for _, m := range out.members {
		peers = append(peers, m.PeerURLs...)
	}
	client := clusterClient(nil, 2*time.Second)
	var ms []peerMember
	for pause := 250 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		var err error
		if ms, err = membership(ctx, client, peers); err != nil {
			return fmt.Errorf("the running cluster of %s: %w", discovery, err)
		}
		if ms != nil {
			break
		}
		if pause == 250*time.Millisecond {
			log.Info("token is full; waiting for one of its members to answer on its peer URL, to join the cluster", "peers", strings.Join(peers, ","))
		}
		if sleep(ctx, pause) != nil {
			return fmt.Errorf("%w: %s is full and none of its members (%s) answered on its peer URL, so there is no running cluster to join yet",
				ErrTimeout, discovery, strings.Join(peers, ", "))
		}
	}
	log.Info("token is full; joining its running cluster", "members", len(ms))
	members, err := joinCluster(ctx, client, ms, self, self.PeerURLs[0], log)
	if err != nil {
		return err
	}
	out.members, out.full, out.joined = members, false, true
	return nil
}
