package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// AuthSpec is the access control EnableAuth and EnableV2Auth set up: a root
// user and one ordinary user whose role may read and write some key
// prefixes.
type AuthSpec struct {
	User     string   // default "agent"
	Role     string   // default User + "-rw"
	Prefixes []string // default DiscoveryPrefixes()
	// RootPassword and Password default to random ones.
	RootPassword, Password string
}

// EtcdUsers are the users EnableAuth or EnableV2Auth made.
type EtcdUsers struct {
	Root, User Credentials
	Role       string
	Prefixes   []string
}

// DiscoveryPrefixes are the prefixes an ordinary user gets by default:
// where v2 and v3 discovery tokens live, and a prefix for tests' own keys.
func DiscoveryPrefixes() []string { return []string{"/_etcd/registry/", "/testenv/"} }

// users fills spec's defaults and writes the password files.
func (spec AuthSpec) users(t testing.TB) *EtcdUsers {
	t.Helper()
	if spec.User == "" {
		spec.User = "agent"
	}
	if spec.Role == "" {
		spec.Role = spec.User + "-rw"
	}
	if spec.Prefixes == nil {
		spec.Prefixes = DiscoveryPrefixes()
	}
	dir := t.TempDir()
	return &EtcdUsers{
		Root:     credentials(t, dir, "root", spec.RootPassword),
		User:     credentials(t, dir, spec.User, spec.Password),
		Role:     spec.Role,
		Prefixes: spec.Prefixes,
	}
}

func credentials(t testing.TB, dir, name, password string) Credentials {
	t.Helper()
	if password == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		password = hex.EncodeToString(b)
	}
	file := filepath.Join(dir, fileName(name)+".password")
	if err := os.WriteFile(file, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	return Credentials{Name: name, Password: password, PasswordFile: file}
}

// EnableAuth turns on etcd's v3 authentication for the cluster m belongs
// to, with etcdctl through m: a root user with the root role (which etcd
// requires before "auth enable"), and spec's user with a role that may read
// and write each of spec's prefixes. With --client-cert-auth, a request
// without a token is then the user its certificate's CN names.
func EnableAuth(t testing.TB, m *Etcd, spec AuthSpec) *EtcdUsers {
	t.Helper()
	u := spec.users(t)
	steps := [][]string{
		{"role", "add", "root"},
		{"user", "add", "root", "--new-user-password", u.Root.Password},
		{"user", "grant-role", "root", "root"},
		{"role", "add", u.Role},
	}
	for _, p := range u.Prefixes {
		steps = append(steps, []string{"role", "grant-permission", u.Role, "--prefix=true", "readwrite", p})
	}
	steps = append(steps,
		[]string{"user", "add", u.User.Name, "--new-user-password", u.User.Password},
		[]string{"user", "grant-role", u.User.Name, u.Role},
		[]string{"auth", "enable"},
	)
	for _, args := range steps {
		if _, err := m.Etcdctl(t, nil, args...); err != nil {
			t.Fatalf("enable auth on %s: %v", m.Name, err)
		}
	}
	return u
}

// EnableV2Auth turns on the v2 API's own authentication (etcd 3.4 and 3.5
// with --enable-v2; it is separate from v3 auth and only guards /v2/keys).
// Through m's /v2/auth API it makes the root user, spec's user with a role
// that may read and write spec's prefixes (as v2 globs "<prefix>*", which
// also allow recursive reads and watches below them), enables auth, and
// revokes the built-in guest role's read and write of "/*", which it has
// after "enable" and which would otherwise serve every request without
// credentials. Requests then use HTTP basic auth.
func EnableV2Auth(t testing.TB, m *Etcd, spec AuthSpec) *EtcdUsers {
	t.Helper()
	u := spec.users(t)
	c, err := m.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	var globs []string
	for _, p := range u.Prefixes {
		globs = append(globs, p+"*")
	}
	type perms struct {
		KV struct {
			Read  []string `json:"read"`
			Write []string `json:"write"`
		} `json:"kv"`
	}
	var rw, all perms
	rw.KV.Read, rw.KV.Write = globs, globs
	all.KV.Read, all.KV.Write = []string{"/*"}, []string{"/*"}
	steps := []struct {
		path string
		as   *Credentials
		body any
	}{
		{"/v2/auth/users/root", nil, map[string]any{"user": "root", "password": u.Root.Password}},
		{"/v2/auth/roles/" + u.Role, nil, map[string]any{"role": u.Role, "permissions": rw}},
		{"/v2/auth/users/" + u.User.Name, nil, map[string]any{"user": u.User.Name, "password": u.User.Password, "roles": []string{u.Role}}},
		{"/v2/auth/enable", nil, nil},
		{"/v2/auth/roles/guest", &u.Root, map[string]any{"role": "guest", "revoke": all}},
	}
	for _, s := range steps {
		if err := v2AuthPut(c, m.ClientURL+s.path, s.as, s.body); err != nil {
			t.Fatalf("enable v2 auth on %s: %v", m.Name, err)
		}
	}
	return u
}

func v2AuthPut(c *http.Client, url string, as *Credentials, body any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if as != nil {
		req.SetBasicAuth(as.Name, as.Password)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}
