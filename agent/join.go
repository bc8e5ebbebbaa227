package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Cluster is a running etcd cluster, reached through its members' client
// URLs with the cluster credentials.
type Cluster interface {
	Members(ctx context.Context) ([]ClusterMember, error)
	// AddMember adds a member with peerURLs, as a learner or as a voter,
	// and returns it and the member list with it. A peer URL that a
	// member has already is ErrPeerURLExists; a second learner where etcd
	// allows one is ErrTooManyLearners.
	AddMember(ctx context.Context, peerURLs []string, learner bool) (ClusterMember, []ClusterMember, error)
	// PromoteMember makes a learner a voter. A learner that has not caught
	// up with the leader is ErrLearnerNotReady; a member that is a voter
	// already is ErrNotLearner; one that does not exist ErrMemberNotFound.
	PromoteMember(ctx context.Context, id uint64) error
	RemoveMember(ctx context.Context, id uint64) error
	// Lock takes the named lock, waiting while another holds it. The
	// lock lives as long as a lease the client keeps alive, so a holder
	// that crashes gives it up when its lease expires.
	Lock(ctx context.Context, name string) (unlock func(), err error)
	Close() error
}

// ClusterDialer opens a client to the cluster whose client URLs are
// endpoints.
type ClusterDialer func(ctx context.Context, endpoints []string) (Cluster, error)

// Errors a Cluster reports, beside ErrUnavailable (no leader, unhealthy,
// not enough started members: faults that pass) and ErrAccess.
var (
	ErrPeerURLExists   = errors.New("peer URL exists")
	ErrTooManyLearners = errors.New("too many learner members")
	ErrLearnerNotReady = errors.New("learner not in sync with the leader")
	ErrNotLearner      = errors.New("member is not a learner")
	ErrMemberNotFound  = errors.New("member not found")
)

// JoinAs says how a host joins a running cluster.
type JoinAs string

// The ways to join.
const (
	JoinAsLearner JoinAs = "learner" // added as a learner; promote makes it a voter once it caught up
	JoinAsVoter   JoinAs = "voter"   // added as a voting member at once
)

// joinLock is the etcd lock under which agents add members, so that one
// host is added, and started, before the next is added: etcd starts a
// joining member only if the member list it is given has as many members
// as the cluster (an add after this host's, before its etcd started,
// would make its list one short).
const joinLock = "etcd-discovery-agent/join"

// joinState is what a running cluster's member list says of this host.
type joinState int

const (
	joinAdd     joinState = iota // not a member: add it
	joinResume                   // added earlier (by a run that did not finish), not started
	joinInitial                  // in the cluster's initial member list: a new cluster still forming
	joinTaken                    // a started member has this peer URL, or this name
)

// joinClassify says what the member list ms says of a host named name
// with peer URL peerURL, and which member it is about.
func joinClassify(ms []ClusterMember, name, peerURL string) (joinState, ClusterMember) {
	if m, ok := memberWithURL(ms, peerURL); ok {
		switch {
		case m.started():
			return joinTaken, m
		case m.Name == "":
			return joinResume, m
		}
		return joinInitial, m
	}
	for _, m := range ms {
		if m.Name == name && m.started() {
			return joinTaken, m
		}
	}
	return joinAdd, ClusterMember{}
}

func memberWithURL(ms []ClusterMember, u string) (ClusterMember, bool) {
	i := slices.IndexFunc(ms, func(m ClusterMember) bool { return slices.Contains(m.PeerURLs, u) })
	if i < 0 {
		return ClusterMember{}, false
	}
	return ms[i], true
}

// joiner adds this host to a running cluster.
type joiner struct {
	self    Member // as the cluster will know it: name and the one peer URL
	as      JoinAs
	replace bool
	peers   Peers
	dial    ClusterDialer
	auth    Credentials // how dial reaches the cluster, for messages
	clock   Clock
	log     *slog.Logger
}

// join adds j.self to the running cluster whose member list ms is, unless
// an earlier run added it already, and returns the member list etcd needs
// to join (state existing), this host in it under its name.
func (j joiner) join(ctx context.Context, ms []ClusterMember) ([]Member, error) {
	peerURL := j.self.PeerURLs[0]
	state, m := joinClassify(ms, j.self.Name, peerURL)
	if state == joinTaken {
		var err error
		if ms, err = j.replaceOld(ctx, ms, m); err != nil {
			return nil, err
		}
		state, m = joinClassify(ms, j.self.Name, peerURL)
	}
	if state == joinResume {
		j.log.Info("this host was added to the running cluster by an earlier run; not adding it again", "member_id", FormatID(m.ID))
		return joinedMembers(ms, m.ID, j.self.Name), nil
	}
	if state == joinInitial {
		return nil, fmt.Errorf("%w: the running cluster lists this host (%s) as an initial member, yet it has not started", ErrConflict, peerURL)
	}
	id, list, err := j.add(ctx, ms)
	if err != nil {
		return nil, refused(err, "the running cluster", j.auth)
	}
	j.log.Info("added this host to the running cluster", "member_id", FormatID(id), "peer_url", peerURL, "as", string(j.as))
	return joinedMembers(list, id, j.self.Name), nil
}

// replaceOld handles a started member that holds this host's peer URL or
// name (a host that lost its data dir): a conflict, unless replace is on
// and the old member's peer port does not answer, in which case it is
// removed. It returns the member list after the removal.
func (j joiner) replaceOld(ctx context.Context, ms []ClusterMember, old ClusterMember) ([]ClusterMember, error) {
	holds := "peer URL " + j.self.PeerURLs[0]
	if !slices.Contains(old.PeerURLs, j.self.PeerURLs[0]) {
		holds = "name " + Quote(j.self.Name)
	}
	if !j.replace {
		return nil, fmt.Errorf("%w: member %s (%s, %s) of the running cluster has started and holds this host's %s; if this host lost its data dir, remove that member (etcdctl member remove %s) or let the agent replace it, and run again",
			ErrConflict, FormatID(old.ID), Quote(old.Name), strings.Join(old.PeerURLs, ","), holds, FormatID(old.ID))
	}
	for _, u := range old.PeerURLs {
		if j.peers.Serves(ctx, u) {
			return nil, fmt.Errorf("%w: member %s (%s) holds this host's %s and still answers on its peer URL %s; it is not replaced while it runs",
				ErrConflict, FormatID(old.ID), Quote(old.Name), holds, u)
		}
	}
	c, err := j.open(ctx, ms, old.ID)
	if err != nil {
		return nil, refused(err, "the running cluster", j.auth)
	}
	defer c.Close()
	if err := c.RemoveMember(ctx, old.ID); err != nil && !errors.Is(err, ErrMemberNotFound) {
		return nil, refused(fmt.Errorf("remove member %s (%s): %w", FormatID(old.ID), strings.Join(old.PeerURLs, ","), err), "the running cluster", j.auth)
	}
	j.log.Warn("replaced a member that holds this host's identity and does not answer: removed it from the cluster",
		"removed_id", FormatID(old.ID), "removed_name", old.Name, "removed_peer_urls", strings.Join(old.PeerURLs, ","), "holds", holds)
	return c.Members(ctx)
}

// open dials the client URLs of the started voters (a learner serves no
// member operations), leaving out skip.
func (j joiner) open(ctx context.Context, ms []ClusterMember, skip uint64) (Cluster, error) {
	var endpoints []string
	for _, m := range ms {
		if m.ID != skip && m.started() && !m.IsLearner {
			endpoints = append(endpoints, m.ClientURLs...)
		}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("no member of the running cluster has started (none has client URLs)")
	}
	return j.dial(ctx, endpoints)
}

// unstartedError: another member was added and has not started yet;
// adding this host now would give that member's etcd a member list one
// short.
type unstartedError struct{ m ClusterMember }

func (e *unstartedError) Error() string {
	return fmt.Sprintf("member %s (%s) was added but has not started yet; if its host is gone, remove it (etcdctl member remove %s)",
		FormatID(e.m.ID), strings.Join(e.m.PeerURLs, ","), FormatID(e.m.ID))
}

// add adds this host, one host at a time: under the join lock, and only
// when no other added member is waiting to start. It waits, within ctx,
// while etcd refuses (unhealthy until every member has been connected for
// a while, another learner not promoted yet) or another host joins.
func (j joiner) add(ctx context.Context, ms []ClusterMember) (uint64, []ClusterMember, error) {
	c, err := j.open(ctx, ms, 0)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	peerURL := j.self.PeerURLs[0]
	var id uint64
	var list []ClusterMember
	w := wait{what: "the running cluster to take this host as a member", sched: joinBackoff, clock: j.clock, log: j.log}
	err = w.run(ctx, func(ctx context.Context) error {
		var err error
		id, list, err = j.addOnce(ctx, c, peerURL)
		var ue *unstartedError
		switch {
		case errors.As(err, &ue), errors.Is(err, ErrTooManyLearners), errors.Is(err, ErrUnavailable):
			return fmt.Errorf("%w: %w", errNotYet, err)
		case errors.Is(err, ErrPeerURLExists):
			// An earlier try got through and its answer was lost, or
			// another host added this URL meanwhile.
			if again, merr := c.Members(ctx); merr == nil {
				if st, m := joinClassify(again, j.self.Name, peerURL); st == joinResume {
					id, list = m.ID, again
					return nil
				}
			}
			return fmt.Errorf("%w: member add: %w, and the member list does not show it added and unstarted", ErrConflict, err)
		}
		return err
	})
	return id, list, err
}

// addOnce is one try of add.
func (j joiner) addOnce(ctx context.Context, c Cluster, peerURL string) (uint64, []ClusterMember, error) {
	unlock, err := c.Lock(ctx, joinLock)
	if err != nil {
		return 0, nil, err
	}
	defer unlock()
	ms, err := c.Members(ctx)
	if err != nil {
		return 0, nil, err
	}
	for _, m := range ms {
		if !m.started() && !slices.Contains(m.PeerURLs, peerURL) {
			return 0, nil, &unstartedError{m}
		}
	}
	m, list, err := c.AddMember(ctx, []string{peerURL}, j.as == JoinAsLearner)
	if err != nil {
		return 0, nil, err
	}
	if !slices.ContainsFunc(list, func(x ClusterMember) bool { return x.ID == m.ID }) {
		return 0, nil, fmt.Errorf("member add: the new member %s is not in the member list it returned", FormatID(m.ID))
	}
	return m.ID, list, nil
}

// joinedMembers is the member list etcd needs to join: every member with
// its name, the new one (id) named selfName, unstarted others by their ID.
func joinedMembers(ms []ClusterMember, id uint64, selfName string) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		name := m.Name
		switch {
		case m.ID == id:
			name = selfName
		case name == "":
			name = FormatID(m.ID)
		}
		out = append(out, Member{Name: name, PeerURLs: slices.Clone(m.PeerURLs)})
	}
	return out
}

// runningMembers asks the peers for the member list of the cluster they
// form, waiting (within ctx) until one answers.
func runningMembers(ctx context.Context, p Peers, peerURLs []string, clock Clock, log *slog.Logger) ([]ClusterMember, error) {
	w := wait{what: "a member of the cluster to answer on its peer URL (" + strings.Join(peerURLs, ", ") + ")", sched: joinBackoff, clock: clock, log: log}
	return retry(ctx, w, func(ctx context.Context) ([]ClusterMember, error) {
		ms, why, err := p.members(ctx, peerURLs)
		if err == nil && ms == nil {
			return nil, fmt.Errorf("%w: no member answered (%v)", errNotYet, why)
		}
		return ms, err
	})
}

// byAddress reports whether every member's peer URLs name IP addresses.
func byAddress(ms []ClusterMember) bool {
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
