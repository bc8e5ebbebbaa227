// Package etcdv2 is the agent's Registry for v2 discovery tokens: a
// directory of etcd's v2 keys API (etcd 3.4/3.5 with --enable-v2, or a
// discovery.etcd.io-style service), spoken through the KeysAPI of
// go.etcd.io/etcd/client/v2, the client etcd's own --discovery uses.
//
// Layout under the token directory D (the path of the discovery URL):
//
//	D/_config/size   decimal member count, written when the token is made
//	D/<memberID>     name=url[,name=url...] of one registered member
//
// Every key is addressed as endpoint + D + "/" + suffix, with no /v2/keys
// added (a self-hosted token URL carries it in its path), as etcd's own
// client addresses them.
//
// Which keys are entries, as etcd's own client sees them: every child of
// D but _config, in a listing and in a watch alike. A watch reports a key
// below a child directory as that child (Nested); changes under _config
// are not entries.
package etcdv2

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

// RequestTimeout bounds every request that is not a watch, as etcd's own
// discovery client bounds them.
const RequestTimeout = 5 * time.Second

// Registry is one v2 token directory.
type Registry struct {
	url      string // the discovery URL, byte for byte
	endpoint string // its scheme and host
	dir      string // the token path D
	keys     client.KeysAPI
}

var (
	_ agent.TokenDeleter = (*Registry)(nil)
	_ agent.TokenCreator = (*Registry)(nil)
)

// New returns the registry of the token at discoveryURL (which
// agent.CheckDiscoveryURL accepts), reached with access: TLS settings and
// basic auth.
func New(discoveryURL string, access agent.Access) (*Registry, error) {
	u, err := url.Parse(discoveryURL)
	if err != nil {
		return nil, err
	}
	c, err := client.New(client.Config{
		Endpoints: []string{u.Scheme + "://" + u.Host},
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     access.TLS,
			TLSHandshakeTimeout: 10 * time.Second,
		},
		Username: access.User,
		Password: access.Password,
	})
	if err != nil {
		return nil, err
	}
	return &Registry{url: discoveryURL, endpoint: u.Scheme + "://" + u.Host, dir: u.Path, keys: client.NewKeysAPIWithPrefix(c, "")}, nil
}

// Token is the discovery URL: etcd's v2 discovery hashes it into member
// IDs.
func (r *Registry) Token() string { return r.url }

func (r *Registry) key(suffix string) string { return r.dir + "/" + suffix }

// Size reads D/_config/size as etcd's own client parses it: an unsigned
// decimal integer, nothing around it. Zero is refused too.
func (r *Registry) Size(ctx context.Context) (int, error) {
	resp, err := r.get(ctx, r.key("_config/size"), "read the token's size")
	if err != nil {
		return 0, err
	}
	n, ok := parseSize(resp.Node.Value)
	if !ok {
		return 0, fmt.Errorf("%w: %s/_config/size holds %s; etcd's own client reads only a positive decimal number without sign or spaces", agent.ErrBadSize, r.dir, agent.Quote(resp.Node.Value))
	}
	return n, nil
}

// parseSize reads a size as etcd's own v2 client does (strconv.ParseUint,
// base 10), refusing too 0, which forms no cluster, and sizes beyond any
// cluster's.
func parseSize(v string) (int, bool) {
	n, err := strconv.ParseUint(v, 10, 31)
	return int(n), err == nil && n > 0
}

// List returns the children of D but _config, and the registry index.
func (r *Registry) List(ctx context.Context) ([]agent.Entry, uint64, error) {
	resp, err := r.get(ctx, r.dir, "list the token")
	if err != nil {
		return nil, 0, err
	}
	var es []agent.Entry
	for _, n := range resp.Node.Nodes {
		if path.Base(n.Key) == "_config" {
			continue
		}
		es = append(es, entry(path.Base(n.Key), n, n.Dir))
	}
	return es, resp.Index, nil
}

// Register creates D/key=value only if it does not exist (prevExist=false);
// a key that exists is agent.ErrKeyExists with the entry it holds.
func (r *Registry) Register(ctx context.Context, key, value string) (agent.Entry, error) {
	rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	resp, err := r.keys.Set(rctx, r.key(key), value, &client.SetOptions{PrevExist: client.PrevNoExist})
	if err == nil {
		return entry(key, resp.Node, false), nil
	}
	err = classify(ctx, r.endpoint, "register "+r.key(key), err)
	if !errors.Is(err, agent.ErrKeyExists) {
		return agent.Entry{}, err
	}
	held, gerr := r.get(ctx, r.key(key), "read the registration")
	if gerr != nil {
		return agent.Entry{}, gerr
	}
	return entry(key, held.Node, held.Node.Dir), err
}

// Remove deletes D/key if it was last modified at e.Modified.
func (r *Registry) Remove(ctx context.Context, e agent.Entry) error {
	rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	_, err := r.keys.Delete(rctx, r.key(e.Key), &client.DeleteOptions{PrevIndex: e.Modified})
	err = classify(ctx, r.endpoint, "remove "+r.key(e.Key), err)
	if errors.Is(err, agent.ErrNoToken) {
		return nil // gone already
	}
	return err
}

// Watch reports D's changes after index after: one long poll per change,
// as etcd's own client watches.
func (r *Registry) Watch(_ context.Context, after uint64) agent.Watcher {
	return &watcher{r: r, w: r.keys.Watcher(r.dir, &client.WatcherOptions{AfterIndex: after, Recursive: true})}
}

type watcher struct {
	r *Registry
	w client.Watcher
}

func (w *watcher) Close() {}

// Next returns the next change to an entry, skipping changes under
// _config.
func (w *watcher) Next(ctx context.Context) (agent.Change, error) {
	for {
		resp, err := w.w.Next(ctx)
		if err != nil {
			return agent.Change{}, classify(ctx, w.r.endpoint, "watch "+w.r.dir, err)
		}
		n := resp.Node
		dir := w.r.dirKey(n.Key)
		if n.Key == dir {
			if deleted(resp.Action) {
				return agent.Change{}, fmt.Errorf("%w: %s was removed (%s)", agent.ErrNoToken, w.r.dir, resp.Action)
			}
			continue // the directory itself
		}
		rel, ok := strings.CutPrefix(n.Key, dir+"/")
		if !ok {
			// etcd's v2 event history matches keys by prefix: a watch of
			// .../tok3 may be told of .../tok. Not this token's.
			continue
		}
		child, _, nested := strings.Cut(rel, "/")
		if child == "_config" {
			continue
		}
		if nested && deleted(resp.Action) {
			continue // a key below a child went; the child stays
		}
		return agent.Change{Entry: entry(child, n, nested || n.Dir), Deleted: deleted(resp.Action)}, nil
	}
}

// dirKey is D as the registry names it in the key of one of its nodes:
// etcd drops the /v2/keys of the URL path, so the name is the longest
// suffix of D's path whose segments start key.
func (r *Registry) dirKey(key string) string {
	segs := strings.Split(strings.Trim(r.dir, "/"), "/")
	for i := range segs {
		d := "/" + strings.Join(segs[i:], "/")
		if key == d || strings.HasPrefix(key, d+"/") {
			return d
		}
	}
	return r.dir
}

func deleted(action string) bool {
	switch action {
	case "delete", "compareAndDelete", "expire":
		return true
	}
	return false
}

func entry(key string, n *client.Node, nested bool) agent.Entry {
	return agent.Entry{Key: key, Value: n.Value, Created: n.CreatedIndex, Modified: n.ModifiedIndex, Nested: nested}
}

// get reads one key, bounded by RequestTimeout.
func (r *Registry) get(ctx context.Context, key, what string) (*client.Response, error) {
	rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	resp, err := r.keys.Get(rctx, key, &client.GetOptions{Quorum: false})
	if err != nil {
		return nil, classify(ctx, r.endpoint, what, err)
	}
	return resp, nil
}

// classify maps a client/v2 error to the agent's, by type: etcd's error
// codes, the client's ClusterError (every endpoint failed: transport
// errors and 5xx), TLS failures inside it, and the request's own timeout.
// ctx is the caller's context: when it is still alive, a deadline that
// passed is the request's own. An EOF from an https endpoint that speaks
// plain HTTP is a refusal, not a fault that heals.
func classify(ctx context.Context, endpoint, op string, err error) error {
	if err == nil {
		return nil
	}
	var (
		ee client.Error
		ce *client.ClusterError
	)
	switch {
	case errors.As(err, &ee):
		return fmt.Errorf("%s: %w: %w", op, codeError(ee.Code), err)
	case errors.As(err, &ce):
		for _, e := range ce.Errors {
			if agent.TLSFailure(e) {
				return fmt.Errorf("%s: %w: %w", op, agent.ErrAccess, e)
			}
			if nt := agent.NotTLS(ctx, "the registry at", endpoint, e); nt != nil {
				return fmt.Errorf("%s: %w", op, nt)
			}
		}
		return fmt.Errorf("%s: %w: %w", op, agent.ErrUnavailable, err)
	case errors.Is(err, client.ErrInvalidJSON):
		return fmt.Errorf("%s: %w: the registry did not answer in etcd's v2 keys API (is the URL a token directory of an etcd with --enable-v2, or of a discovery service?): %w", op, agent.ErrRegistryData, err)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("%s: %w: the registry did not answer within %s", op, agent.ErrUnavailable, RequestTimeout)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// codeError is the agent's error for an etcd v2 error code.
func codeError(code int) error {
	switch code {
	case client.ErrorCodeKeyNotFound:
		return agent.ErrNoToken
	case client.ErrorCodeNodeExist:
		return agent.ErrKeyExists
	case client.ErrorCodeTestFailed:
		return agent.ErrChanged
	case client.ErrorCodeEventIndexCleared:
		return agent.ErrHistoryLost
	case client.ErrorCodeUnauthorized:
		return agent.ErrAccess
	case client.ErrorCodeRaftInternal, client.ErrorCodeLeaderElect, client.ErrorCodeWatcherCleared, 402:
		return agent.ErrUnavailable
	}
	return agent.ErrRegistryData
}

// Create makes the token: D/_config/size, create-only, so that a token is
// never overwritten. With a ttl, D is made first, create-only, as a
// directory that expires after ttl (rounded up to whole seconds, etcd's
// unit) and takes the size and every registration with it.
func (r *Registry) Create(ctx context.Context, size int, ttl time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	if ttl > 0 {
		ttl = (ttl + time.Second - 1).Truncate(time.Second)
		_, err := r.keys.Set(rctx, r.dir, "", &client.SetOptions{Dir: true, TTL: ttl, PrevExist: client.PrevNoExist})
		if err != nil {
			return classify(ctx, r.endpoint, "create the token directory "+r.dir, err)
		}
	}
	_, err := r.keys.Set(rctx, r.key("_config/size"), strconv.Itoa(size), &client.SetOptions{PrevExist: client.PrevNoExist})
	return classify(ctx, r.endpoint, "create the token "+r.dir, err)
}

// Delete removes the token: D with its size and every registration
// (recursively). A token that does not exist is agent.ErrNoToken.
func (r *Registry) Delete(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	_, err := r.keys.Delete(rctx, r.dir, &client.DeleteOptions{Dir: true, Recursive: true})
	return classify(ctx, r.endpoint, "delete the token "+r.dir, err)
}
