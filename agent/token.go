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
	"time"
)

// TokenCreator makes a token: its size key, create-only, so that a token
// is never overwritten (a token that exists is ErrKeyExists). With a ttl
// that is not 0, the token and every registration under it expire ttl
// after it was made, used or not.
type TokenCreator interface {
	Create(ctx context.Context, size int, ttl time.Duration) error
}

// TokenSpec describes the token CreateToken makes.
type TokenSpec struct {
	Endpoints []string // client URLs of the etcd that keeps the token
	// V3 makes a v3 token (etcd's --discovery-token, under /_etcd/registry/
	// in any etcd from 3.4 on) instead of a v2 token directory.
	V3     bool
	Prefix string // v2: the directory the token is made in, such as /discovery
	Token  string // the token's name; empty: 32 random hex digits
	Size   int
	// TTL is how long the token lives; 0: until it is deleted. etcd keeps
	// TTLs in whole seconds, so it must be whole seconds, at least 1 s.
	TTL time.Duration
}

// Validate checks what needs no I/O, naming fields of TokenSpec.
func (s TokenSpec) Validate() error {
	var errs []error
	if s.Size < 1 {
		errs = append(errs, fieldErr("Size", "%d: a cluster needs at least one member", s.Size))
	}
	if s.TTL < 0 || (s.TTL > 0 && s.TTL < time.Second) || s.TTL%time.Second != 0 {
		errs = append(errs, fieldErr("TTL", "%s: give whole seconds, at least 1s (etcd keeps TTLs in seconds), or leave it out for a token that lives until it is deleted", s.TTL))
	}
	if s.Token != "" {
		if err := CheckDiscoveryToken(s.Token); err != nil {
			errs = append(errs, &FieldError{Field: "Token", Err: err})
		}
	}
	if len(s.Endpoints) == 0 {
		errs = append(errs, fieldErr("Endpoints", "give at least one etcd client URL"))
	}
	for _, ep := range s.Endpoints {
		check := v2Endpoint
		if s.V3 {
			check = func(ep string) (string, error) { return ep, CheckEndpoint(ep) }
		}
		if _, err := check(ep); err != nil {
			errs = append(errs, &FieldError{Field: "Endpoints", Err: err})
		}
	}
	if !s.V3 {
		if p := "/" + strings.Trim(s.Prefix, "/"); p == "/" || !tokenPathRE.MatchString(p) || path.Clean(p) != p {
			errs = append(errs, fieldErr("Prefix", "%s: use a plain path such as /discovery", Quote(s.Prefix)))
		}
	}
	return configError(errs)
}

// v2Endpoint accepts the URL of an etcd (or discovery service) whose v2
// keys API holds tokens, and returns it as a discovery URL begins.
func v2Endpoint(ep string) (string, error) {
	u, err := url.Parse(strings.TrimRight(ep, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.User != nil {
		return "", fmt.Errorf("%s is not an etcd client URL such as http://10.0.0.1:2379", Quote(ep))
	}
	return u.String(), nil
}

// CreateToken makes the token spec describes, create-only, and returns it
// as Registry.Token names it: the discovery URL of a v2 token, the token
// itself for a v3 one. open makes the creator of a token so named (for a
// v3 token, in the etcd at spec.Endpoints). A v2 token is made in the v2
// keys API of the first endpoint that takes the write; a v3 token in the
// etcd the endpoints reach. A token of that name that exists is an
// ErrConflict, and is left as it is.
func CreateToken(ctx context.Context, spec TokenSpec, open func(token string) (TokenCreator, error), log *slog.Logger) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", err
	}
	token := spec.Token
	if token == "" {
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return "", err
		}
		token = hex.EncodeToString(id)
	}
	// Where to try: a v2 token on each endpoint in turn (its name, the
	// discovery URL, says where it is), a v3 token once in the etcd that
	// all the endpoints reach.
	names, where := []string{token}, []string{strings.Join(spec.Endpoints, ",")}
	if !spec.V3 {
		names, where = nil, nil
		prefix := "/" + strings.Trim(spec.Prefix, "/")
		for _, ep := range spec.Endpoints {
			u, _ := v2Endpoint(ep)
			names, where = append(names, u+path.Join("/v2/keys", prefix, token)), append(where, u)
		}
	}
	var errs []error
	for i, name := range names {
		c, err := open(name)
		if err != nil {
			return "", err
		}
		err = c.Create(ctx, spec.Size, spec.TTL)
		if err == nil {
			return name, nil
		}
		if errors.Is(err, ErrKeyExists) {
			return "", fmt.Errorf("%w: the token %s exists already; it was left as it is: choose another name, or delete it first with 'etcd-discovery-agent token delete' (%w)", ErrConflict, name, err)
		}
		log.Warn("could not create the token on this endpoint", "endpoint", where[i], "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", where[i], err))
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

// Members is how many of the token's entries make its cluster.
func (t *TokenInfo) Members() int {
	n := 0
	for _, e := range t.Entries {
		if e.InCluster {
			n++
		}
	}
	return n
}

// ShowToken reads a token: its size and its entries in order, marking which
// make the cluster, which do not count and which are not valid members,
// by the rule every host applies (tokenMembers).
func ShowToken(ctx context.Context, reg Registry) (*TokenInfo, error) {
	size, err := reg.Size(ctx)
	if err != nil {
		return nil, tokenError(reg, err)
	}
	entries, _, err := reg.List(ctx)
	if err != nil {
		return nil, tokenError(reg, err)
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

// TokenDeleter is a Registry whose token can be removed: its size and
// every registration. Deleting a token that does not exist is ErrNoToken.
type TokenDeleter interface {
	Registry
	Delete(ctx context.Context) error
}

// DeleteToken removes a token and every registration under it, and
// returns what it held. It deletes a token whose cluster formed (as many
// valid members as its size); one that has not formed yet still has hosts
// waiting on it or to come, and is an ErrConflict unless force is set, as
// a token without a usable size is an ErrRegistryData. A token that does
// not exist is an ErrRegistryData wrapping ErrNoToken.
func DeleteToken(ctx context.Context, reg TokenDeleter, force bool) (*TokenInfo, error) {
	const anyway = "--force deletes it anyway"
	info, err := ShowToken(ctx, reg)
	switch {
	case err == nil:
		if members := info.Members(); members < info.Size && !force {
			return info, fmt.Errorf("%w: the token %s holds %d of its %d members: its cluster has not formed, and hosts waiting on it would fail; it was left as it is. %s",
				ErrConflict, reg.Token(), members, info.Size, anyway)
		}
	case errors.Is(err, ErrNoToken):
		es, _, lerr := reg.List(ctx)
		switch {
		case errors.Is(lerr, ErrNoToken) || lerr == nil && len(es) == 0:
			if !force {
				return nil, noToken(reg, ErrNoToken)
			}
		case lerr != nil:
			return nil, lerr
		case !force:
			return nil, fmt.Errorf("%w: the token %s has %d registrations but no size; %s", ErrRegistryData, reg.Token(), len(es), anyway)
		}
	case errors.Is(err, ErrBadSize) && force:
	case errors.Is(err, ErrBadSize):
		return nil, fmt.Errorf("%w; %s", err, anyway)
	default:
		return nil, err
	}
	if err := reg.Delete(ctx); err != nil {
		if errors.Is(err, ErrNoToken) {
			return nil, noToken(reg, err)
		}
		return nil, err
	}
	return info, nil
}

// noToken is the error of a token that does not exist; err says how the
// registry told.
func noToken(reg Registry, err error) error {
	return fmt.Errorf("%w: the token %s does not exist (deleted, expired, or never made): %w", ErrRegistryData, reg.Token(), err)
}
