package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/registry"
)

// rendezvous registers one member under a v2 discovery token and waits
// until the token holds its size of members.
type rendezvous struct {
	reg  *registry.Client
	self Member
	key  string // member ID in hex, the registry key
	log  *slog.Logger

	// progressEvery is how often a long wait says what it waits for.
	progressEvery time.Duration
}

// outcome is what the registry decided.
type outcome struct {
	size    int
	members []Member // the first size members in registration order
	full    bool     // this host is not among them
	joined  bool     // this host joined a running cluster (state existing)
	// addrs holds the addresses of peer URL hosts that are DNS names, as
	// the SRV answers gave them (SRV mode), so they need no lookup.
	addrs map[string]netip.Addr
}

func newRendezvous(reg *registry.Client, self Member, log *slog.Logger) *rendezvous {
	return &rendezvous{
		reg:           reg,
		self:          self,
		key:           FormatID(MemberID(self.PeerURLs, reg.URL())),
		log:           log,
		progressEvery: 30 * time.Second,
	}
}

// run does what etcd's own discovery client does, in four requests when
// nothing fails: read the size, register with a create-only PUT, open a
// live, streaming, recursive watch, then list the token. Because the watch
// is in place before the listing, every later registration arrives on that
// one stream, however many hosts register at the same instant.
// A host that finds itself registered (same key, same value) resumes; a host
// that lands beyond size, or whose name another host holds, removes its own
// key again so the token is left as it was.
func (r *rendezvous) run(ctx context.Context) (outcome, error) {
	size, err := retry(ctx, r.log, "read token size", r.reg.Size)
	if err != nil {
		return outcome{}, r.classify(err)
	}
	r.log.Info("discovery token", "url", r.reg.URL(), "size", size, "key", r.key)

	self, err := r.register(ctx)
	if err != nil {
		return outcome{}, err
	}
	w, err := retry(ctx, r.log, "watch token", func(ctx context.Context) (*registry.Watcher, error) {
		return r.reg.OpenWatch(ctx, 0)
	})
	if err != nil {
		return outcome{}, r.classify(err)
	}
	known := map[string]registry.Node{}
	idx, err := r.relist(ctx, known)
	if err != nil {
		w.Close()
		return outcome{}, err
	}
	if _, ok := known[r.key]; !ok {
		known[r.key] = self // a lagging replica may not list it yet
	}
	if selfLater, err := r.checkNames(firstN(known, size)); selfLater {
		w.Close()
		r.withdraw(ctx, self, "its name is taken")
		return outcome{}, err
	}
	if err := r.wait(ctx, size, known, w, idx); err != nil {
		return outcome{}, err
	}

	first := firstN(known, size)
	if !slices.ContainsFunc(first, func(n registry.Node) bool { return n.Name() == r.key }) {
		r.withdraw(ctx, known[r.key], "the token filled up before this host registered")
		members, err := membersOf(first)
		return outcome{size: size, members: members, full: true}, err
	}
	if selfLater, err := r.checkNames(first); err != nil {
		if selfLater {
			r.withdraw(ctx, known[r.key], "its name is taken")
		}
		return outcome{}, err
	}
	members, err := membersOf(first)
	if err != nil {
		return outcome{}, err
	}
	return outcome{size: size, members: members}, nil
}

// register writes this member's key, create-only. A key that already holds
// exactly our value is ours from an earlier run.
func (r *rendezvous) register(ctx context.Context) (registry.Node, error) {
	value := r.self.RegistryValue()
	node, err := retry(ctx, r.log, "register", func(ctx context.Context) (registry.Node, error) {
		return r.reg.Create(ctx, r.key, value)
	})
	if registry.IsCode(err, registry.CodeNodeExist) {
		node, err = retry(ctx, r.log, "read own key", func(ctx context.Context) (registry.Node, error) {
			return r.reg.Get(ctx, r.key)
		})
		if err != nil {
			return node, r.classify(err)
		}
		if node.Value != value {
			return node, r.keyConflict(node)
		}
		r.log.Info("already registered under this token; resuming", "key", r.key, "created_index", node.CreatedIndex)
		return node, nil
	}
	if err != nil {
		return node, r.classify(err)
	}
	r.log.Info("registered", "key", r.key, "value", value, "created_index", node.CreatedIndex)
	return node, nil
}

// wait applies the changes of the token directory to known until it holds
// at least size members. first is the watch opened before the listing at
// index idx; follow-up watches resume where the previous answer ended.
func (r *rendezvous) wait(ctx context.Context, size int, known map[string]registry.Node, first *registry.Watcher, idx uint64) error {
	w := first
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	var have atomic.Int64
	have.Store(int64(len(known)))
	if len(known) >= size {
		return nil
	}
	stop := r.reportProgress(ctx, size, &have)
	defer stop()

	dir := path.Base(r.reg.URL())
	seen := 0
	apply := func(ev registry.Event) bool {
		seen++
		if !isMemberKey(ev.Node, dir) || ev.Node.ModifiedIndex <= idx {
			return true // not a member, or already in the listing
		}
		name := ev.Node.Name()
		if ev.Deleted() {
			delete(known, name)
			r.log.Info("member left the token", "key", Clip(name), "have", len(known), "want", size)
		} else {
			prev, ok := known[name]
			if ok {
				ev.Node.CreatedIndex = prev.CreatedIndex
			}
			known[name] = ev.Node
			if !ok {
				r.log.Info("member registered", "key", Clip(name), "value", Clip(ev.Node.Value), "have", len(known), "want", size)
			}
		}
		have.Store(int64(len(known)))
		return len(known) < size
	}

	waitIndex := idx + 1
	for attempt := 0; len(known) < size; {
		var err error
		if w == nil {
			w, err = r.reg.OpenWatch(ctx, waitIndex)
		}
		seen = 0
		if err == nil {
			err = w.Each(ctx, apply)
			waitIndex = max(waitIndex, w.NextIndex())
			w.Close()
			w = nil
		}
		switch {
		case err == nil && seen > 0:
			attempt = 0
		case err == nil:
			// An empty answer (a discovery service cuts long polls): ask
			// again, pausing a little in case it answers at once.
			attempt++
			if err := sleep(ctx, backoff(min(attempt, 3))); err != nil {
				return r.timeout(err, size, len(known))
			}
		case registry.IsCode(err, registry.CodeEventIndexClear):
			r.log.Warn("watch fell behind the registry's event history; listing the token again")
			clear(known)
			if idx, err = r.relist(ctx, known); err != nil {
				return err
			}
			waitIndex = idx + 1
			have.Store(int64(len(known)))
		case ctx.Err() != nil:
			return r.timeout(ctx.Err(), size, len(known))
		case registry.Temporary(err):
			attempt++
			d := backoff(attempt)
			r.log.Warn("watching the token failed; retrying", "err", err, "retry_in", d.String())
			if err := sleep(ctx, d); err != nil {
				return r.timeout(err, size, len(known))
			}
		default:
			return r.classify(err)
		}
	}
	return nil
}

// relist replaces known with a fresh listing and returns its index.
func (r *rendezvous) relist(ctx context.Context, known map[string]registry.Node) (uint64, error) {
	type listing struct {
		nodes []registry.Node
		index uint64
	}
	l, err := retry(ctx, r.log, "list token", func(ctx context.Context) (listing, error) {
		nodes, idx, err := r.reg.List(ctx)
		return listing{nodes, idx}, err
	})
	if err != nil {
		return 0, r.classify(err)
	}
	for _, n := range l.nodes {
		known[n.Name()] = n
	}
	return l.index, nil
}

// withdraw removes this host's own key, unless someone rewrote it since.
func (r *rendezvous) withdraw(ctx context.Context, self registry.Node, why string) {
	if self.Key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registry.RequestTimeout)
	defer cancel()
	if err := r.reg.Delete(ctx, r.key, self.ModifiedIndex); err != nil {
		r.log.Warn("could not remove this host's registration", "why", why, "key", r.key, "err", err)
		return
	}
	r.log.Info("removed this host's registration", "why", why, "key", r.key)
}

// checkNames refuses a cluster in which one name is registered under two
// keys (etcd would refuse it too). selfLater reports that this host is the
// later of the two, the one that should leave.
func (r *rendezvous) checkNames(nodes []registry.Node) (selfLater bool, err error) {
	byName := map[string]registry.Node{}
	for _, n := range nodes {
		ms, err := ParseCluster(n.Value)
		if err != nil || len(ms) != 1 {
			continue // reported by membersOf
		}
		name := ms[0].Name
		earlier, dup := byName[name]
		if !dup {
			byName[name] = n
			continue
		}
		switch r.key {
		case n.Name():
			return true, fmt.Errorf("%w: name %q is already registered by another host (key %s, %s); choose another --name, or delete that key if it is stale", ErrConflict, name, Quote(earlier.Name()), Quote(earlier.Value))
		case earlier.Name():
			return false, fmt.Errorf("%w: another host registered this host's name %q after it (key %s, %s); give that host another --name", ErrConflict, name, Quote(n.Name()), Quote(n.Value))
		}
		return false, fmt.Errorf("%w: name %q is registered twice, under keys %s and %s; remove the stale entry or use a new token", ErrConflict, name, Quote(earlier.Name()), Quote(n.Name()))
	}
	return false, nil
}

func (r *rendezvous) keyConflict(n registry.Node) error {
	return fmt.Errorf("%w: key %s (the member ID of peer URLs %s on this token) already holds %s, not %q; another host claims these peer URLs, or this host changed its name",
		ErrConflict, r.key, strings.Join(r.self.PeerURLs, ","), Quote(n.Value), r.self.RegistryValue())
}

// classify wraps registry errors into the run's outcomes.
func (r *rendezvous) classify(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case registry.IsCode(err, registry.CodeKeyNotFound):
		return fmt.Errorf("%w: %s has no token directory or no _config/size; create tokens with 'etcd-discovery-agent token new': %w", ErrRegistryData, r.reg.URL(), err)
	case errors.Is(err, registry.ErrBadSize):
		return fmt.Errorf("%w: %w", ErrRegistryData, err)
	}
	var re *registry.Error
	if errors.As(err, &re) && re.Code == 0 && re.Status >= 400 && re.Status < 500 {
		return fmt.Errorf("%w: %s is not a usable discovery token (check the URL): %w", ErrRegistryData, r.reg.URL(), err)
	}
	return err
}

func (r *rendezvous) timeout(err error, size, have int) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w waiting for the token to fill: %d of %d members registered", ErrTimeout, have, size)
	}
	return err
}

// reportProgress logs what the wait is for, every progressEvery, until stop.
func (r *rendezvous) reportProgress(ctx context.Context, size int, have *atomic.Int64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.progressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.log.Info("waiting for members to register", "token", r.reg.URL(), "have", have.Load(), "want", size)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// isMemberKey tells member keys (direct, non-hidden children of the token
// directory) from everything else a recursive watch reports.
func isMemberKey(n registry.Node, dir string) bool {
	return !n.Dir && n.Key != "" && path.Base(path.Dir(n.Key)) == dir && !strings.HasPrefix(n.Name(), "_")
}

// firstN orders nodes by creation index and keeps at most n.
func firstN(known map[string]registry.Node, n int) []registry.Node {
	nodes := make([]registry.Node, 0, len(known))
	for _, v := range known {
		nodes = append(nodes, v)
	}
	slices.SortFunc(nodes, func(a, b registry.Node) int {
		return cmp.Or(cmp.Compare(a.CreatedIndex, b.CreatedIndex), strings.Compare(a.Key, b.Key))
	})
	return nodes[:min(n, len(nodes))]
}

// membersOf validates registry entries strictly: each must be one member
// with a valid name and canonical URLs, names and URLs unique across them.
func membersOf(nodes []registry.Node) ([]Member, error) {
	members := make([]Member, 0, len(nodes))
	names := map[string]string{}
	var all []string
	for _, n := range nodes {
		ms, err := ParseCluster(n.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: registry key %s holds %s: %w; delete that key or use a new token", ErrRegistryData, Quote(n.Key), Quote(n.Value), err)
		}
		if len(ms) != 1 {
			return nil, fmt.Errorf("%w: registry key %s holds %d members (%s), want one", ErrRegistryData, Quote(n.Key), len(ms), Quote(n.Value))
		}
		if other, dup := names[ms[0].Name]; dup {
			return nil, fmt.Errorf("%w: name %q is registered twice, under keys %s and %s; remove the stale entry or use a new token", ErrConflict, ms[0].Name, Quote(other), Quote(n.Key))
		}
		names[ms[0].Name] = n.Key
		all = append(all, n.Value)
		members = append(members, ms[0])
	}
	if len(all) > 0 {
		if _, err := ParseCluster(strings.Join(all, ",")); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRegistryData, err)
		}
	}
	return members, nil
}

// retry calls f until it succeeds, fails for good, or ctx ends, with
// exponential backoff between attempts that fail temporarily. When ctx ends,
// the error says what was being done and what the last failure was.
func retry[T any](ctx context.Context, log *slog.Logger, what string, f func(context.Context) (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := f(ctx)
		if err == nil || !registry.Temporary(err) {
			return v, err
		}
		if ctx.Err() == nil {
			d := backoff(attempt)
			log.Warn("registry request failed; retrying", "op", what, "err", err, "retry_in", d.String())
			if sleep(ctx, d) == nil {
				continue
			}
		}
		return v, fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
	}
}

// backoff is 250ms doubling to at most 16s, with up to 25% jitter.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(max(attempt-1, 0), 6)
	return d + rand.N(d/4+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
