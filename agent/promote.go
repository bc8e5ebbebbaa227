package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Promote makes this host's member a voter once it caught up with the
// leader: the promote command, which runs after etcd started
// (ExecStartPost=). A member that is a voter already is done; one that
// is not in the cluster is an error. It waits, within the timeout, while
// etcd says the learner is not in sync yet, and says what it waits for.
func Promote(ctx context.Context, cfg Config, deps Deps) error {
	b, err := prepareCommand(cfg, deps)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	// This host as the cluster knows it: by its advertised peer URL, or
	// (SRV mode) as the cache says the cluster names it.
	self := b.base.Self
	peers := slices.Clone(self.PeerURLs)
	if cached := b.loadCache(); cached != nil {
		if cached.Role == RoleProxy {
			b.log.Info("this host is a proxy; nothing to promote")
			return nil
		}
		var members []Member
		members, self = cached.cluster()
		for _, m := range members {
			peers = append(peers, m.PeerURLs...)
		}
	}
	ms, err := runningMembers(ctx, b.deps.Peers, peers, deps.Clock, b.log)
	if err != nil {
		return refused(err, "the members' peer URLs", cfg.PeerTLS)
	}
	mine := append(slices.Clone(self.PeerURLs), b.base.Self.PeerURLs...)
	i := slices.IndexFunc(ms, func(m ClusterMember) bool {
		return slices.ContainsFunc(m.PeerURLs, func(u string) bool { return slices.Contains(mine, u) })
	})
	if i < 0 {
		return fmt.Errorf("%w: this host (%s) is not a member of the cluster its peers know; bootstrap it first", ErrMemberNotFound, self.RegistryValue())
	}
	me := ms[i]
	if !me.IsLearner {
		b.log.Info("this member is a voter; nothing to promote", "member_id", FormatID(me.ID))
		return nil
	}
	j := b.joiner(self)
	c, err := j.open(ctx, ms, me.ID)
	if err != nil {
		return refused(err, "the running cluster", cfg.ClusterAuth)
	}
	defer c.Close()
	w := wait{what: fmt.Sprintf("learner %s to catch up with the leader, to promote it", FormatID(me.ID)), sched: joinBackoff, clock: deps.Clock, log: b.log}
	err = w.run(ctx, func(ctx context.Context) error {
		err := c.PromoteMember(ctx, me.ID)
		switch {
		case errors.Is(err, ErrNotLearner):
			return nil
		case errors.Is(err, ErrLearnerNotReady), errors.Is(err, ErrUnavailable):
			return fmt.Errorf("%w: %w", errNotYet, err)
		}
		return err
	})
	if err != nil {
		return refused(err, "the running cluster", cfg.ClusterAuth)
	}
	b.log.Info("promoted this member to a voter", "member_id", FormatID(me.ID))
	return nil
}

// prepareCommand checks what a command other than bootstrap needs of the
// configuration (this host's identity and addresses) and resolves it.
func prepareCommand(cfg Config, deps Deps) (*bootstrap, error) {
	errs := []error{checkName(cfg.Name), checkScheme(cfg.Scheme), checkPort("PeerPort", cfg.PeerPort), checkTimeout(cfg.Timeout)}
	if err := configError(errs); err != nil {
		return nil, err
	}
	if deps.Clock == nil || deps.Log == nil || deps.Cluster == nil {
		return nil, errors.New("Clock, Log and Cluster are required")
	}
	return newBootstrap(cfg, deps)
}
