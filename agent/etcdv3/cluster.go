package etcdv3

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

// lockTTL bounds, in seconds, how long the join lock outlives an agent
// that crashed while holding it: the session's lease, which the client
// keeps alive while the agent runs.
const lockTTL = 30

// Cluster is agent.Cluster on client/v3.
type Cluster struct {
	c      *clientv3.Client
	access agent.Access
}

var _ agent.Cluster = (*Cluster)(nil)

// Dialer returns an agent.ClusterDialer that connects with access.
func Dialer(access agent.Access) agent.ClusterDialer {
	return func(ctx context.Context, endpoints []string) (agent.Cluster, error) {
		c, err := Dial(ctx, endpoints, access)
		if err != nil {
			return nil, err
		}
		return &Cluster{c: c, access: access}, nil
	}
}

// Close closes the client.
func (c *Cluster) Close() error { return c.c.Close() }

func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, RequestTimeout)
}

// Members is the cluster's member list.
func (c *Cluster) Members(ctx context.Context) ([]agent.ClusterMember, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	resp, err := c.c.MemberList(ctx)
	if err != nil {
		return nil, Classify("member list", err)
	}
	return members(resp.Members), nil
}

// AddMember adds peerURLs as a learner or a voter.
func (c *Cluster) AddMember(ctx context.Context, peerURLs []string, learner bool) (agent.ClusterMember, []agent.ClusterMember, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	add := c.c.MemberAdd
	if learner {
		add = c.c.MemberAddAsLearner
	}
	resp, err := add(ctx, peerURLs)
	if err != nil {
		return agent.ClusterMember{}, nil, Classify(fmt.Sprintf("member add %v", peerURLs), err)
	}
	return member(resp.Member), members(resp.Members), nil
}

// PromoteMember makes the learner id a voter. It asks the leader: etcd
// 3.4 loses the user of a promote that a follower forwards when auth is
// on, and the request times out (etcd-io/etcd#20757, fixed in 3.5 and
// later).
func (c *Cluster) PromoteMember(ctx context.Context, id uint64) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	op := fmt.Sprintf("member promote %x", id)
	leader, err := c.leader(ctx)
	if err != nil {
		return Classify(op, err)
	}
	lc, err := Dial(ctx, []string{leader}, c.access)
	if err != nil {
		return err
	}
	defer lc.Close()
	_, err = lc.MemberPromote(ctx, id)
	return Classify(op, err)
}

// leader returns the client URL of the member that leads, as the
// endpoints' status says.
func (c *Cluster) leader(ctx context.Context) (string, error) {
	var last error
	for _, ep := range c.c.Endpoints() {
		st, err := c.c.Status(ctx, ep)
		if err != nil {
			last = err
			continue
		}
		if st.Leader == 0 {
			return "", rpctypes.ErrNoLeader
		}
		if st.Header.MemberId == st.Leader {
			return ep, nil
		}
		ms, err := c.c.MemberList(ctx)
		if err != nil {
			return "", err
		}
		for _, m := range ms.Members {
			if m.ID == st.Leader && len(m.ClientURLs) > 0 {
				return m.ClientURLs[0], nil
			}
		}
		return "", fmt.Errorf("the leader %x has no client URL", st.Leader)
	}
	return "", last
}

// RemoveMember removes member id.
func (c *Cluster) RemoveMember(ctx context.Context, id uint64) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	_, err := c.c.MemberRemove(ctx, id)
	return Classify(fmt.Sprintf("member remove %x", id), err)
}

// Lock takes the mutex name in a session whose lease of lockTTL seconds
// the client keeps alive; unlock releases the mutex and revokes the lease.
// Waiting for the mutex is bounded by ctx only.
func (c *Cluster) Lock(ctx context.Context, name string) (func(), error) {
	s, err := concurrency.NewSession(c.c, concurrency.WithTTL(lockTTL), concurrency.WithContext(ctx))
	if err != nil {
		return nil, Classify("lock "+name+": session", err)
	}
	m := concurrency.NewMutex(s, name)
	if err := m.Lock(ctx); err != nil {
		s.Close()
		return nil, Classify("lock "+name, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
		defer cancel()
		_ = m.Unlock(ctx)
		_ = s.Close()
	}, nil
}

func member(m *etcdserverpb.Member) agent.ClusterMember {
	if m == nil {
		return agent.ClusterMember{}
	}
	return agent.ClusterMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
}

func members(ms []*etcdserverpb.Member) []agent.ClusterMember {
	out := make([]agent.ClusterMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, member(m))
	}
	return out
}
