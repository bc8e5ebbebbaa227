package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"strings"
)

// TokenCreator makes a token: its size key, create-only, so that a token
// is never overwritten.
type TokenCreator interface {
	Create(ctx context.Context, size int) error
}

// NewToken makes a fresh v2 token directory with its size under prefix in
// the etcd v2 keys API of the first of endpoints that accepts the write,
// and returns its discovery URL. open makes the creator for a discovery
// URL.
func NewToken(ctx context.Context, endpoints []string, prefix string, size int, open func(discoveryURL string) (TokenCreator, error), log *slog.Logger) (string, error) {
	var errs []error
	if size < 1 {
		errs = append(errs, fieldErr("Size", "%d: a cluster needs at least one member", size))
	}
	if len(endpoints) == 0 {
		errs = append(errs, fieldErr("Endpoints", "give at least one etcd client URL"))
	}
	prefix = "/" + strings.Trim(prefix, "/")
	if prefix == "/" || !tokenPathRE.MatchString(prefix) || path.Clean(prefix) != prefix {
		errs = append(errs, fieldErr("Prefix", "%s: use a plain path such as /discovery", Quote(prefix)))
	}
	var urls []string
	for _, ep := range endpoints {
		u, err := url.Parse(strings.TrimRight(ep, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, fieldErr("Endpoints", "%s is not an etcd client URL such as http://10.0.0.1:2379", Quote(ep)))
			continue
		}
		urls = append(urls, u.String())
	}
	if err := configError(errs); err != nil {
		return "", err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	token := hex.EncodeToString(id)
	for _, ep := range urls {
		discovery := ep + path.Join("/v2/keys", prefix, token)
		c, err := open(discovery)
		if err != nil {
			return "", err
		}
		err = c.Create(ctx, size)
		if err == nil {
			return discovery, nil
		}
		log.Warn("could not create the token on this endpoint", "endpoint", ep, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
		if errors.Is(err, ErrAccess) || errors.Is(err, ErrRegistryData) {
			break // the others would refuse alike
		}
	}
	return "", fmt.Errorf("create token: %w", errors.Join(errs...))
}

// TokenEntry is one registration in a token, as ShowToken reports it.
type TokenEntry struct {
	Entry
	Member    *Member // nil when the entry is not a valid member
	Problem   string  // why the entry is not a valid member, or does not count
	InCluster bool    // among the members that make the cluster
}

// TokenInfo is the content of a token.
type TokenInfo struct {
	Token   string
	Size    int
	Entries []TokenEntry // in registration order
}

// ShowToken reads a token: its size and its entries in order, marking which
// make the cluster, which do not count and which are not valid members,
// by the rule every host applies (tokenMembers).
func ShowToken(ctx context.Context, reg Registry) (*TokenInfo, error) {
	r := &rendezvous{reg: reg}
	size, err := reg.Size(ctx)
	if err != nil {
		return nil, r.tokenError(err)
	}
	entries, _, err := reg.List(ctx)
	if err != nil {
		return nil, r.tokenError(err)
	}
	members, claims, _ := tokenMembers(entries, size, reg.Token())
	in := map[string]bool{}
	for _, m := range members {
		in[m.Key] = true
	}
	claimed := map[string]claim{}
	for _, c := range claims {
		claimed[c.later.Key] = c
	}
	info := &TokenInfo{Token: reg.Token(), Size: size}
	for _, e := range sortEntries(entries) {
		te := TokenEntry{Entry: e, InCluster: in[e.Key]}
		v, err := checkEntry(e, reg.Token())
		switch c, ok := claimed[e.Key]; {
		case err != nil:
			te.Problem = err.Error()
		case ok:
			te.Member = &v.member
			te.Problem = fmt.Sprintf("%s is held by the earlier key %s", c.what, c.earlier.Key)
		default:
			te.Member = &v.member
		}
		info.Entries = append(info.Entries, te)
	}
	return info, nil
}
