package etcdv3

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

// registryPrefix is where etcd's own v3 discovery (3.6+, --discovery-token
// with --discovery-endpoints) keeps its tokens, in any etcd from 3.4 on:
//
//	/_etcd/registry/<token>/_config/size        decimal member count
//	/_etcd/registry/<token>/members/<memberID>  name=url[,name=url...]
//
// The member ID is the SHA-1 of the sorted peer URLs followed by the token
// (not a URL), written in lower-case hex without padding.
const registryPrefix = "/_etcd/registry"

// sizeKey is the key of a token's size.
func sizeKey(token string) string { return path.Join(registryPrefix, token, "_config/size") }

// membersPrefix is the prefix of a token's member keys, without a trailing
// slash, as etcd's own client ranges over it.
func membersPrefix(token string) string { return path.Join(registryPrefix, token, "members") }

// tokenPrefix is everything of one token, with the slash that keeps tokens
// that share a beginning apart.
func tokenPrefix(token string) string { return path.Join(registryPrefix, token) + "/" }

// Registry is agent.Registry for a v3 discovery token, on client/v3, as
// etcd's own v3 discovery reads it: member keys are every key under the
// members prefix (which etcd ranges over without a trailing slash), values
// are trimmed of white space, and values without a '=' are not entries.
type Registry struct {
	conn  lazy
	token string
	// lease holds the token's size key when it was made with a TTL; a
	// registration takes the same lease, so the whole token expires
	// together, as a v2 token directory with a TTL does.
	lease clientv3.LeaseID
}

var (
	_ agent.TokenDeleter = (*Registry)(nil)
	_ agent.TokenCreator = (*Registry)(nil)
)

// NewRegistry returns the registry of token in the etcd at endpoints. It
// connects on the first request, within that request's wait.
func NewRegistry(endpoints []string, token string, access agent.Access) (*Registry, error) {
	if err := agent.CheckDiscoveryToken(token); err != nil {
		return nil, err
	}
	return &Registry{conn: lazy{endpoints: endpoints, access: access}, token: token}, nil
}

// Close closes the client.
func (r *Registry) Close() error { return r.conn.close() }

// Token is the token: etcd's v3 discovery hashes it into member IDs.
func (r *Registry) Token() string { return r.token }

// Size reads the size as etcd's own client parses it: strconv.ParseInt of
// the value as it is, which must be positive.
func (r *Registry) Size(ctx context.Context) (int, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	c, err := r.conn.client(ctx)
	if err != nil {
		return 0, err
	}
	resp, err := c.Get(ctx, sizeKey(r.token))
	if err != nil {
		return 0, Classify("read the token's size", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%w: %s does not exist", agent.ErrNoToken, sizeKey(r.token))
	}
	r.lease = clientv3.LeaseID(resp.Kvs[0].Lease)
	v := string(resp.Kvs[0].Value)
	n, ok := parseSize(v)
	if !ok {
		return 0, fmt.Errorf("%w: %s holds %s; etcd's own client reads only a positive decimal number", agent.ErrBadSize, sizeKey(r.token), agent.Quote(v))
	}
	return n, nil
}

// parseSize reads a size as etcd's own v3 client does (strconv.ParseInt,
// base 10, positive), refusing too sizes beyond any cluster's.
func parseSize(v string) (int, bool) {
	n, err := strconv.ParseInt(v, 10, 32)
	return int(n), err == nil && n > 0
}

// entry is the agent's view of one key under the members prefix, and
// whether etcd's own client counts it at all.
func (r *Registry) entry(kv *mvccpb.KeyValue) (agent.Entry, bool) {
	value := strings.TrimSpace(string(kv.Value))
	rel := strings.TrimPrefix(strings.TrimSpace(string(kv.Key)), membersPrefix(r.token))
	e := agent.Entry{Key: strings.TrimPrefix(rel, "/"), Value: value, Created: uint64(kv.CreateRevision), Modified: uint64(kv.ModRevision)}
	e.Nested = !strings.HasPrefix(rel, "/") || strings.Contains(e.Key, "/")
	return e, strings.Contains(value, "=")
}

// List returns the entries under the members prefix and the revision.
func (r *Registry) List(ctx context.Context) ([]agent.Entry, uint64, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	c, err := r.conn.client(ctx)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.Get(ctx, membersPrefix(r.token), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, Classify("list the token", err)
	}
	return r.entries(resp.Kvs), uint64(resp.Header.Revision), nil
}

// Register writes members/key=value only if the key does not exist: a
// transaction on its create revision being 0. A key that exists is
// agent.ErrKeyExists with the entry it holds.
func (r *Registry) Register(ctx context.Context, key, value string) (agent.Entry, error) {
	e, _, _, err := r.RegisterListing(ctx, key, value)
	return e, err
}

// RegisterListing is Register that, in the same transaction, lists the
// token's entries at the registration's revision, and returns them and
// that revision. A watch from there starts at the present: etcd delivers
// the changes of a watch that starts behind it only on its resync, every
// 100 ms, which the registration's own answer would otherwise cost.
func (r *Registry) RegisterListing(ctx context.Context, key, value string) (agent.Entry, []agent.Entry, uint64, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	k := membersPrefix(r.token) + "/" + key
	var opts []clientv3.OpOption
	if r.lease != clientv3.NoLease {
		opts = append(opts, clientv3.WithLease(r.lease))
	}
	c, err := r.conn.client(ctx)
	if err != nil {
		return agent.Entry{}, nil, 0, err
	}
	resp, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, value, opts...), clientv3.OpGet(membersPrefix(r.token), clientv3.WithPrefix())).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return agent.Entry{}, nil, 0, Classify("register "+k, err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return agent.Entry{}, nil, 0, fmt.Errorf("register %s: %w, but it is gone again", k, agent.ErrKeyExists)
		}
		e, _ := r.entry(kvs[0])
		return e, nil, 0, fmt.Errorf("register %s: %w", k, agent.ErrKeyExists)
	}
	rev := uint64(resp.Header.Revision)
	return agent.Entry{Key: key, Value: value, Created: rev, Modified: rev}, r.entries(resp.Responses[1].GetResponseRange().Kvs), rev, nil
}

// entries are the keys of a range over the members prefix that etcd's own
// client counts.
func (r *Registry) entries(kvs []*mvccpb.KeyValue) []agent.Entry {
	var es []agent.Entry
	for _, kv := range kvs {
		if e, ok := r.entry(kv); ok {
			es = append(es, e)
		}
	}
	return es
}

// Remove deletes e's key if its mod revision is still e.Modified.
func (r *Registry) Remove(ctx context.Context, e agent.Entry) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	k := membersPrefix(r.token) + "/" + e.Key
	c, err := r.conn.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", int64(e.Modified))).
		Then(clientv3.OpDelete(k)).
		Commit()
	if err != nil {
		return Classify("remove "+k, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("remove %s: %w", k, agent.ErrChanged)
	}
	return nil
}

// Watch reports the changes under the members prefix after revision
// after. A compaction past it is agent.ErrHistoryLost.
func (r *Registry) Watch(ctx context.Context, after uint64) agent.Watcher {
	ctx, cancel := context.WithCancel(ctx)
	return &watcher{r: r, ctx: ctx, after: after, cancel: cancel}
}

type watcher struct {
	r       *Registry
	ctx     context.Context // the watch's, cancelled by Close
	after   uint64
	ch      clientv3.WatchChan // opened by the first Next
	cancel  context.CancelFunc
	pending []agent.Change
}

func (w *watcher) Close() { w.cancel() }

// Next returns the next change, skipping PUTs of values without a '='
// (not entries, as etcd's own client skips them).
func (w *watcher) Next(ctx context.Context) (agent.Change, error) {
	if w.ch == nil {
		c, err := w.r.conn.client(ctx)
		if err != nil {
			return agent.Change{}, err
		}
		w.ch = c.Watch(clientv3.WithRequireLeader(w.ctx), membersPrefix(w.r.token), clientv3.WithPrefix(), clientv3.WithRev(int64(w.after)+1))
	}
	for len(w.pending) == 0 {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return agent.Change{}, ctx.Err()
		case resp, ok = <-w.ch:
		}
		switch {
		case !ok:
			return agent.Change{}, fmt.Errorf("watch %s: %w: the watch ended", membersPrefix(w.r.token), agent.ErrUnavailable)
		case resp.CompactRevision != 0:
			return agent.Change{}, fmt.Errorf("watch %s: %w: compacted up to revision %d", membersPrefix(w.r.token), agent.ErrHistoryLost, resp.CompactRevision)
		case resp.Err() != nil:
			return agent.Change{}, Classify("watch "+membersPrefix(w.r.token), resp.Err())
		}
		for _, ev := range resp.Events {
			e, counts := w.r.entry(ev.Kv)
			switch {
			case ev.Type == clientv3.EventTypeDelete:
				w.pending = append(w.pending, agent.Change{Entry: e, Deleted: true})
			case counts:
				w.pending = append(w.pending, agent.Change{Entry: e})
			}
		}
	}
	ch := w.pending[0]
	w.pending = w.pending[1:]
	return ch, nil
}

// Create makes the token: its size key, create-only, held by a lease of
// ttl (rounded up to whole seconds) when ttl is not 0, so that a token
// nobody uses expires. A token that exists is agent.ErrKeyExists, and the
// lease granted for it is revoked again.
func (r *Registry) Create(ctx context.Context, size int, ttl time.Duration) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	c, err := r.conn.client(ctx)
	if err != nil {
		return err
	}
	var opts []clientv3.OpOption
	lease := clientv3.NoLease
	if ttl > 0 {
		l, err := c.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
		if err != nil {
			return Classify("grant the token's lease", err)
		}
		lease = l.ID
		opts = append(opts, clientv3.WithLease(lease))
	}
	k := sizeKey(r.token)
	resp, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, strconv.Itoa(size), opts...)).
		Commit()
	if err != nil {
		return Classify("create the token "+r.token, err)
	}
	if !resp.Succeeded {
		if lease != clientv3.NoLease {
			_, _ = c.Revoke(ctx, lease) // it holds nothing; otherwise it expires by itself
		}
		return fmt.Errorf("create the token %s: %w", r.token, agent.ErrKeyExists)
	}
	return nil
}

// Delete removes the token: every key under /_etcd/registry/<token>/, its
// size and every registration, and nothing of a token whose name only
// begins with this one's. A token that does not exist is
// agent.ErrNoToken.
func (r *Registry) Delete(ctx context.Context) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	c, err := r.conn.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Delete(ctx, tokenPrefix(r.token), clientv3.WithPrefix())
	if err != nil {
		return Classify("delete the token "+r.token, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("delete the token %s: %w: nothing under %s", r.token, agent.ErrNoToken, tokenPrefix(r.token))
	}
	return nil
}
