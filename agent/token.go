package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path"
	"strings"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/registry"
)

// NewToken creates a fresh token directory with _config/size in an etcd v2
// keys API and returns its discovery URL. It tries the endpoints in order and
// uses the first that accepts the write; the size key is created only if it
// does not exist, so a token is never overwritten.
func NewToken(ctx context.Context, endpoints []string, prefix string, size int, log *slog.Logger) (string, error) {
	if size < 1 {
		return "", fmt.Errorf("%w: --size %d: a cluster needs at least one member", ErrConfig, size)
	}
	if len(endpoints) == 0 {
		return "", fmt.Errorf("%w: --endpoints: give at least one etcd client URL", ErrConfig)
	}
	prefix = "/" + strings.Trim(prefix, "/")
	if strings.Contains(prefix, "//") || strings.ContainsAny(prefix, "?#%") || prefix == "/" {
		return "", fmt.Errorf("%w: --prefix %q: use a plain path such as /discovery", ErrConfig, prefix)
	}
	id := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, id); err != nil {
		return "", err
	}
	token := hex.EncodeToString(id)
	var errs []error
	for _, ep := range endpoints {
		u, err := url.Parse(strings.TrimRight(ep, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", fmt.Errorf("%w: --endpoints: %q is not an etcd client URL such as http://10.0.0.1:2379", ErrConfig, ep)
		}
		u.Path = path.Join("/v2/keys", prefix, token)
		c, err := registry.New(u.String(), nil)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrConfig, err)
		}
		err = c.MakeDir(ctx, size)
		if err == nil {
			return c.URL(), nil
		}
		log.Warn("could not create the token on this endpoint", "endpoint", ep, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
		if !registry.Temporary(err) {
			var re *registry.Error
			if errors.As(err, &re) && re.Status == 404 {
				errs = append(errs, errors.New("the endpoint has no v2 keys API: start the registry etcd (3.4 or 3.5) with --enable-v2"))
			}
		}
	}
	return "", fmt.Errorf("create token: %w", errors.Join(errs...))
}

// TokenEntry is one registration in a token, as ShowToken reports it.
type TokenEntry struct {
	Key          string
	Value        string
	CreatedIndex uint64
	Member       *Member // nil when the value is not a valid member
	Problem      string  // why the value is not a valid member
	InCluster    bool    // among the first size valid registrations
}

// TokenInfo is the content of a token directory.
type TokenInfo struct {
	URL     string
	Size    int
	Entries []TokenEntry // in registration order
}

// ShowToken reads a token: its size and its registrations in order, marking
// which are within the first size and which are malformed.
func ShowToken(ctx context.Context, discovery string) (*TokenInfo, error) {
	c, err := registry.New(discovery, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	r := &rendezvous{reg: c}
	size, err := c.Size(ctx)
	if err != nil {
		return nil, r.classify(err)
	}
	nodes, _, err := c.List(ctx)
	if err != nil {
		return nil, r.classify(err)
	}
	known := map[string]registry.Node{}
	for _, n := range nodes {
		known[n.Name()] = n
	}
	info := &TokenInfo{URL: c.URL(), Size: size}
	for i, n := range firstN(known, len(known)) {
		e := TokenEntry{Key: n.Name(), Value: n.Value, CreatedIndex: n.CreatedIndex, InCluster: i < size}
		ms, err := ParseCluster(n.Value)
		switch {
		case err != nil:
			e.Problem = err.Error()
		case len(ms) != 1:
			e.Problem = fmt.Sprintf("holds %d members, want one", len(ms))
		default:
			e.Member = &ms[0]
		}
		info.Entries = append(info.Entries, e)
	}
	return info, nil
}
