package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// What TokenSpec.Validate refuses, each naming its field.
func TestTokenSpecValidate(t *testing.T) {
	ok := TokenSpec{Endpoints: []string{"http://10.0.0.1:2379"}, Prefix: "/discovery", Size: 3}
	for _, tc := range []struct {
		name  string
		edit  func(*TokenSpec)
		field string // "" when valid
	}{
		{"v2", func(*TokenSpec) {}, ""},
		{"v3 with a name and a TTL", func(s *TokenSpec) { s.V3, s.Token, s.TTL = true, "prod-1.a_b~c", 90*time.Second }, ""},
		{"v3 ignores the prefix", func(s *TokenSpec) { s.V3, s.Prefix = true, "" }, ""},
		{"size 0", func(s *TokenSpec) { s.Size = 0 }, "Size"},
		{"negative TTL", func(s *TokenSpec) { s.TTL = -time.Second }, "TTL"},
		{"TTL under a second", func(s *TokenSpec) { s.TTL = 500 * time.Millisecond }, "TTL"},
		{"TTL not whole seconds", func(s *TokenSpec) { s.TTL = 1500 * time.Millisecond }, "TTL"},
		{"token with a slash", func(s *TokenSpec) { s.Token = "a/b" }, "Token"},
		{"token ..", func(s *TokenSpec) { s.V3, s.Token = true, ".." }, "Token"},
		{"no endpoints", func(s *TokenSpec) { s.Endpoints = nil }, "Endpoints"},
		{"v2 endpoint with a fragment", func(s *TokenSpec) { s.Endpoints = []string{"http://10.0.0.1:2379#x"} }, "Endpoints"},
		{"v3 endpoint without a port", func(s *TokenSpec) { s.V3, s.Endpoints = true, []string{"http://10.0.0.1"} }, "Endpoints"},
		{"v2 prefix with ..", func(s *TokenSpec) { s.Prefix = "/a/../b" }, "Prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.edit(&s)
			err := s.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.Is(err, ErrConfig) || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate() = %v; want an ErrConfig naming %s", err, tc.field)
			}
		})
	}
}

// creator records the tokens CreateToken opens and fails as told.
type creator struct {
	opened []string
	fail   map[string]error // by token name
	got    struct {
		size int
		ttl  time.Duration
	}
}

func (c *creator) open(token string) (TokenCreator, error) {
	c.opened = append(c.opened, token)
	return createFunc(func(_ context.Context, size int, ttl time.Duration) error {
		c.got.size, c.got.ttl = size, ttl
		return c.fail[token]
	}), nil
}

type createFunc func(ctx context.Context, size int, ttl time.Duration) error

func (f createFunc) Create(ctx context.Context, size int, ttl time.Duration) error {
	return f(ctx, size, ttl)
}

// CreateToken names a v2 token by its discovery URL on each endpoint in
// turn and a v3 token by itself, once; a token that exists is a conflict
// at once, a fault that heals moves on to the next endpoint.
func TestCreateToken(t *testing.T) {
	ctx := context.Background()
	const a, b = "http://10.0.0.1:2379", "https://10.0.0.2:2379"
	for _, tc := range []struct {
		name   string
		spec   TokenSpec
		fail   map[string]error
		want   string // the token returned; "" for an error
		err    error
		opened []string
	}{
		{"v3", TokenSpec{V3: true, Endpoints: []string{a, b}, Token: "t1", Size: 3, TTL: time.Minute}, nil, "t1", nil, []string{"t1"}},
		{"v3 exists", TokenSpec{V3: true, Endpoints: []string{a}, Token: "t1", Size: 3}, map[string]error{"t1": ErrKeyExists}, "", ErrConflict, []string{"t1"}},
		{"v2", TokenSpec{Endpoints: []string{a + "/", b}, Prefix: "disc/", Token: "t2", Size: 1}, nil, a + "/v2/keys/disc/t2", nil, []string{a + "/v2/keys/disc/t2"}},
		{"v2 next endpoint", TokenSpec{Endpoints: []string{a, b}, Prefix: "/d", Token: "t2", Size: 1},
			map[string]error{a + "/v2/keys/d/t2": ErrUnavailable}, b + "/v2/keys/d/t2", nil, []string{a + "/v2/keys/d/t2", b + "/v2/keys/d/t2"}},
		{"v2 exists", TokenSpec{Endpoints: []string{a, b}, Prefix: "/d", Token: "t2", Size: 1},
			map[string]error{a + "/v2/keys/d/t2": ErrKeyExists}, "", ErrConflict, []string{a + "/v2/keys/d/t2"}},
		{"v2 access refused", TokenSpec{Endpoints: []string{a, b}, Prefix: "/d", Token: "t2", Size: 1},
			map[string]error{a + "/v2/keys/d/t2": ErrAccess}, "", ErrAccess, []string{a + "/v2/keys/d/t2"}},
		{"invalid, nothing opened", TokenSpec{Endpoints: []string{a}, Prefix: "/d", Size: 0}, nil, "", ErrConfig, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &creator{fail: tc.fail}
			got, err := CreateToken(ctx, tc.spec, c.open, quietLog())
			if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("CreateToken = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
			if fmt.Sprint(c.opened) != fmt.Sprint(tc.opened) {
				t.Errorf("opened %q; want %q", c.opened, tc.opened)
			}
			if err == nil && (c.got.size != tc.spec.Size || c.got.ttl != tc.spec.TTL) {
				t.Errorf("created size %d ttl %s; want %d %s", c.got.size, c.got.ttl, tc.spec.Size, tc.spec.TTL)
			}
		})
	}
	c := &creator{}
	tok, err := CreateToken(ctx, TokenSpec{V3: true, Endpoints: []string{a}, Size: 1}, c.open, quietLog())
	if err != nil || len(tok) != 32 || strings.Trim(tok, "0123456789abcdef") != "" {
		t.Errorf("random token %q, %v; want 32 hex digits", tok, err)
	}
}

// memDeleter is memRegistry with a size that may be missing, and Delete.
type memDeleter struct {
	*memRegistry
	noSize  bool
	deleted bool
}

func (m *memDeleter) Size(ctx context.Context) (int, error) {
	if m.noSize {
		return 0, ErrNoToken
	}
	return m.memRegistry.Size(ctx)
}

func (m *memDeleter) Delete(context.Context) error {
	if m.noSize && len(m.entries) == 0 {
		return ErrNoToken
	}
	m.deleted = true
	return nil
}

// DeleteToken deletes a token whose cluster formed; one that has not, or
// has no size, only with force; one that does not exist never.
func TestDeleteToken(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		size    int
		noSize  bool
		entries []Entry
		force   bool
		err     error
	}{
		{"formed", 2, false, []Entry{entry("a", "10.0.0.1", 5), entry("b", "10.0.0.2", 6)}, false, nil},
		{"formed, with an extra", 1, false, []Entry{entry("a", "10.0.0.1", 5), entry("b", "10.0.0.2", 6)}, false, nil},
		{"not formed", 3, false, []Entry{entry("a", "10.0.0.1", 5), entry("b", "10.0.0.2", 6)}, false, ErrConflict},
		{"not formed, forced", 3, false, []Entry{entry("a", "10.0.0.1", 5)}, true, nil},
		{"a second host of one name does not count", 2, false, []Entry{entry("a", "10.0.0.1", 5), entry("a", "10.0.0.2", 6)}, false, ErrConflict},
		{"no size", 0, true, []Entry{entry("a", "10.0.0.1", 5)}, false, ErrRegistryData},
		{"no size, forced", 0, true, []Entry{entry("a", "10.0.0.1", 5)}, true, nil},
		{"missing", 0, true, nil, false, ErrNoToken},
		{"missing, forced", 0, true, nil, true, ErrNoToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &memDeleter{memRegistry: newMemRegistry(tc.size), noSize: tc.noSize}
			for _, e := range tc.entries {
				m.entries[e.Key] = e
			}
			_, err := DeleteToken(ctx, m, tc.force)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("DeleteToken = %v; want %v", err, tc.err)
			}
			if m.deleted != (err == nil) {
				t.Errorf("deleted %t; want %t", m.deleted, err == nil)
			}
			if err != nil && (errors.Is(err, ErrConflict) || tc.name == "no size") && !strings.Contains(err.Error(), "--force deletes it anyway") {
				t.Errorf("the refusal does not say that --force deletes it: %v", err)
			}
		})
	}
}
