// Package registrytest is one conformance suite for every agent.Registry:
// the same test body runs against each backend (the v2 keys API of etcd
// 3.4, the v3 API of etcd 3.4 and 3.7) on a real etcd, through the agent's
// own rendezvous (agent.Bootstrap) as well as through the Registry
// contract itself. It covers register, resume, the full token, conflicts,
// poisoned entries, a watch across a registry restart and lost history.
package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/envfile"
)

// Token is one fresh discovery token of the backend under test.
type Token interface {
	// Open returns a new client of the token, as one more host makes.
	Open(t *testing.T) agent.Registry
	// PutRaw writes key=value under the token's member directory, as a
	// misbehaving host or an operator could.
	PutRaw(t *testing.T, key, value string)
	// PutSize writes the token's size as it is.
	PutSize(t *testing.T, value string)
	// Restart stops the registry and starts it again on its data.
	Restart(t *testing.T)
	// LoseHistory makes the registry forget the changes before now, so
	// that a watch from an earlier position cannot be served.
	LoseHistory(t *testing.T)
}

// Backend is a kind of registry under test.
type Backend struct {
	// NewToken makes a fresh token of size on a fresh registry.
	NewToken func(t *testing.T, size int) Token
	// BadSizes are size values etcd's own client of this kind refuses;
	// GoodSizes those it reads, with what it reads.
	BadSizes  []string
	GoodSizes map[string]int
	// ListsOnRegister says the registry lists the token in the same step
	// as it registers (RegisterListing), as the rendezvous then uses.
	ListsOnRegister bool
}

// Run runs the suite against b.
func Run(t *testing.T, b Backend) {
	t.Run("Contract", func(t *testing.T) { contract(t, b) })
	t.Run("Sizes", func(t *testing.T) { sizes(t, b) })
	t.Run("Register", func(t *testing.T) { register(t, b) })
	t.Run("FullToken", func(t *testing.T) { fullToken(t, b) })
	t.Run("Resume", func(t *testing.T) { resume(t, b) })
	t.Run("Conflict", func(t *testing.T) { conflict(t, b) })
	t.Run("Poisoned", func(t *testing.T) { poisoned(t, b) })
	t.Run("RegistryRestart", func(t *testing.T) { registryRestart(t, b) })
	t.Run("HistoryLost", func(t *testing.T) { historyLost(t, b) })
}

// RandomToken is a token name no other test uses: 16 hex digits.
func RandomToken(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// memberKey is the key a host with this peer URL registers under.
func memberKey(reg agent.Registry, peerURL string) string {
	return agent.FormatID(agent.MemberID([]string{peerURL}, reg.Token()))
}

// contract checks the Registry methods the core relies on.
func contract(t *testing.T, b Backend) {
	tok := b.NewToken(t, 3)
	reg := tok.Open(t)
	ctx := ctxFor(t, 30*time.Second)
	if n, err := reg.Size(ctx); err != nil || n != 3 {
		t.Fatalf("Size = %d, %v; want 3", n, err)
	}
	es, pos, err := reg.List(ctx)
	if err != nil || len(es) != 0 {
		t.Fatalf("List of a new token = %v, %v", es, err)
	}
	w := reg.Watch(ctx, pos)
	defer w.Close()

	a := memberKey(reg, "http://10.0.0.1:2380")
	mine, err := reg.Register(ctx, a, "a=http://10.0.0.1:2380")
	if err != nil || mine.Key != a || mine.Created <= pos {
		t.Fatalf("Register = %+v, %v; want key %s created after %d", mine, err, a, pos)
	}
	held, err := reg.Register(ctx, a, "b=http://10.0.0.1:2380")
	if !errors.Is(err, agent.ErrKeyExists) || held.Value != "a=http://10.0.0.1:2380" || held.Created != mine.Created {
		t.Errorf("second Register = %+v, %v; want ErrKeyExists with the entry held", held, err)
	}
	ch, err := w.Next(ctx)
	if err != nil || ch.Key != a || ch.Deleted || ch.Value != mine.Value || ch.Created != mine.Created {
		t.Errorf("watch after the registration: %+v, %v", ch, err)
	}
	stale := mine
	stale.Modified--
	if err := reg.Remove(ctx, stale); !errors.Is(err, agent.ErrChanged) {
		t.Errorf("Remove of a changed entry = %v; want ErrChanged", err)
	}
	if err := reg.Remove(ctx, mine); err != nil {
		t.Fatalf("Remove = %v", err)
	}
	if ch, err := w.Next(ctx); err != nil || ch.Key != a || !ch.Deleted {
		t.Errorf("watch after the removal: %+v, %v; want the key deleted", ch, err)
	}
	if es, _, err := reg.List(ctx); err != nil || len(es) != 0 {
		t.Errorf("List after the removal = %v, %v; want nothing", es, err)
	}

	// A registry that lists in the same step as it registers lists at the
	// registration's position, the registration among the entries.
	lr, ok := reg.(interface {
		RegisterListing(ctx context.Context, key, value string) (agent.Entry, []agent.Entry, uint64, error)
	})
	if ok != b.ListsOnRegister {
		t.Fatalf("the registry lists on registering: %t; the backend says %t", ok, b.ListsOnRegister)
	}
	if !ok {
		return
	}
	tok.PutRaw(t, memberKey(reg, "http://10.0.0.2:2380"), "b=http://10.0.0.2:2380")
	e, listed, at, err := lr.RegisterListing(ctx, a, "a=http://10.0.0.1:2380")
	if err != nil || at != e.Created || len(listed) != 2 {
		t.Fatalf("RegisterListing = %+v, %v at %d, %v; want the two entries at the registration's revision", e, listed, at, err)
	}
	if _, ok := find(listed, a); !ok {
		t.Errorf("RegisterListing's entries %v lack the registration", listed)
	}
	if _, _, _, err := lr.RegisterListing(ctx, a, "a=http://10.0.0.1:2380"); !errors.Is(err, agent.ErrKeyExists) {
		t.Errorf("second RegisterListing = %v; want ErrKeyExists", err)
	}
}

// sizes: the size is read exactly as etcd's own client of the kind reads
// it, and a bad one is refused before anything is written.
func sizes(t *testing.T, b Backend) {
	for value, want := range b.GoodSizes {
		tok := b.NewToken(t, 1)
		tok.PutSize(t, value)
		if n, err := tok.Open(t).Size(ctxFor(t, 10*time.Second)); err != nil || n != want {
			t.Errorf("size %q: %d, %v; want %d", value, n, err, want)
		}
	}
	for _, value := range b.BadSizes {
		tok := b.NewToken(t, 1)
		tok.PutSize(t, value)
		reg := tok.Open(t)
		if _, err := reg.Size(ctxFor(t, 10*time.Second)); !errors.Is(err, agent.ErrBadSize) {
			t.Errorf("size %q: %v; want ErrBadSize", value, err)
		}
		_, err := bootstrap(t, tok, "a", "10.0.0.1")
		if !errors.Is(err, agent.ErrRegistryData) {
			t.Errorf("bootstrap on size %q: %v; want ErrRegistryData", value, err)
		}
		if es := list(t, reg); len(es) != 0 {
			t.Errorf("bootstrap on size %q left %v", value, es)
		}
	}
}

// register: hosts registering at once decide one cluster.
func register(t *testing.T, b Backend) {
	tok := b.NewToken(t, 3)
	plans := bootstrapAll(t, tok, []host{{"a", "10.0.0.1"}, {"b", "10.0.0.2"}, {"c", "10.0.0.3"}})
	cluster := ""
	for i, p := range plans {
		if p.err != nil {
			t.Fatalf("host %d: %v", i, p.err)
		}
		if cluster == "" {
			cluster = p.env["ETCD_INITIAL_CLUSTER"]
		}
		if p.env["ETCD_INITIAL_CLUSTER"] != cluster || strings.Count(cluster, "=") != 3 {
			t.Errorf("host %d: ETCD_INITIAL_CLUSTER=%s; another host %s", i, p.env["ETCD_INITIAL_CLUSTER"], cluster)
		}
	}
	reg := tok.Open(t)
	es := list(t, reg)
	if len(es) != 3 {
		t.Errorf("the token holds %v; want the three hosts' entries", es)
	}
	for _, e := range es {
		if ms, err := agent.ParseCluster(e.Value); err != nil || memberKey(reg, ms[0].PeerURLs[0]) != e.Key {
			t.Errorf("entry %+v is not a member's key", e)
		}
	}
}

// fullToken: a host that comes after the token filled writes nothing.
func fullToken(t *testing.T, b Backend) {
	tok := b.NewToken(t, 2)
	for _, p := range bootstrapAll(t, tok, []host{{"a", "10.0.0.1"}, {"b", "10.0.0.2"}}) {
		if p.err != nil {
			t.Fatal(p.err)
		}
	}
	_, err := bootstrap(t, tok, "c", "10.0.0.3")
	if !errors.Is(err, agent.ErrTokenFull) {
		t.Errorf("third host: %v; want ErrTokenFull", err)
	}
	if es := list(t, tok.Open(t)); len(es) != 2 {
		t.Errorf("the full token holds %d entries; want 2", len(es))
	}
}

// resume: a host finds its own registration from an earlier run (a run
// that was killed, or that completed) and goes on with it.
func resume(t *testing.T, b Backend) {
	tok := b.NewToken(t, 2)
	reg := tok.Open(t)
	tok.PutRaw(t, memberKey(reg, "http://10.0.0.1:2380"), "a=http://10.0.0.1:2380") // a killed earlier run
	plans := bootstrapAll(t, tok, []host{{"a", "10.0.0.1"}, {"b", "10.0.0.2"}})
	for _, p := range plans {
		if p.err != nil {
			t.Fatal(p.err)
		}
	}
	if !strings.Contains(plans[0].log, "resuming") {
		t.Errorf("host a did not say it resumed:\n%s", plans[0].log)
	}
	// A rerun without its cache, after the token filled: the same cluster.
	again, err := bootstrap(t, tok, "a", "10.0.0.1")
	if err != nil || again.env["ETCD_INITIAL_CLUSTER"] != plans[0].env["ETCD_INITIAL_CLUSTER"] {
		t.Errorf("rerun: %v, %s; want %s", err, again.env["ETCD_INITIAL_CLUSTER"], plans[0].env["ETCD_INITIAL_CLUSTER"])
	}
	if es := list(t, reg); len(es) != 2 {
		t.Errorf("%d entries after the rerun; want 2", len(es))
	}
}

// conflict: a key of this host's peer URL with another value, or this
// host's name registered earlier by another host.
func conflict(t *testing.T, b Backend) {
	tok := b.NewToken(t, 3)
	reg := tok.Open(t)
	tok.PutRaw(t, memberKey(reg, "http://10.0.0.1:2380"), "other=http://10.0.0.1:2380")
	if _, err := bootstrap(t, tok, "a", "10.0.0.1"); !errors.Is(err, agent.ErrConflict) {
		t.Errorf("peer URL held under another name: %v; want ErrConflict", err)
	}
	tok.PutRaw(t, memberKey(reg, "http://10.0.0.9:2380"), "b=http://10.0.0.9:2380") // b, registered first
	_, err := bootstrap(t, tok, "b", "10.0.0.2")
	if !errors.Is(err, agent.ErrConflict) || !strings.Contains(err.Error(), `name "b"`) {
		t.Errorf("name registered first by another host: %v; want ErrConflict naming it", err)
	}
	if _, ok := find(list(t, reg), memberKey(reg, "http://10.0.0.2:2380")); ok {
		t.Error("the later host named b left its registration")
	}
}

// poisoned: an entry etcd's own client would count but that is not a
// member's key spoils the token for every host, which then leaves nothing
// of its own behind; beyond the size, it does not matter.
func poisoned(t *testing.T, b Backend) {
	for _, tc := range []struct{ key, value string }{
		{"abc", "x=http://10.0.0.7:2380"},  // not the member ID of its value
		{"123", "x=http://10.0.0.7:2380/"}, // not a canonical URL
	} {
		tok := b.NewToken(t, 2)
		tok.PutRaw(t, tc.key, tc.value)
		_, err := bootstrap(t, tok, "a", "10.0.0.1")
		if !errors.Is(err, agent.ErrRegistryData) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("entry %s=%s: %v; want ErrRegistryData naming the key", tc.key, tc.value, err)
		}
		if es := list(t, tok.Open(t)); len(es) != 1 {
			t.Errorf("entry %s: the token holds %v; want only the poison", tc.key, es)
		}
	}
	tok := b.NewToken(t, 1)
	if _, err := bootstrap(t, tok, "a", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	tok.PutRaw(t, "abc", "x=http://10.0.0.7:2380") // beyond the size
	if _, err := bootstrap(t, tok, "a", "10.0.0.1"); err != nil {
		t.Errorf("a bad entry beyond the size: %v", err)
	}
}

// registryRestart: a host waiting when the registry restarts finishes
// once the token fills.
func registryRestart(t *testing.T, b Backend) {
	tok := b.NewToken(t, 2)
	first := make(chan result, 1)
	go func() { first <- bootstrapOne(t, tok, host{"a", "10.0.0.1"}) }()
	waitEntries(t, tok.Open(t), 1)
	tok.Restart(t)
	second := bootstrapOne(t, tok, host{"b", "10.0.0.2"})
	a := <-first
	if a.err != nil || second.err != nil || a.env["ETCD_INITIAL_CLUSTER"] != second.env["ETCD_INITIAL_CLUSTER"] {
		t.Fatalf("across a restart: %v / %v, %s / %s", a.err, second.err, a.env["ETCD_INITIAL_CLUSTER"], second.env["ETCD_INITIAL_CLUSTER"])
	}
}

// historyLost: a watch from a position the registry forgot fails with
// ErrHistoryLost (the rendezvous then lists the token again).
func historyLost(t *testing.T, b Backend) {
	tok := b.NewToken(t, 2)
	reg := tok.Open(t)
	ctx := ctxFor(t, 60*time.Second)
	_, pos, err := reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok.PutRaw(t, memberKey(reg, "http://10.0.0.2:2380"), "b=http://10.0.0.2:2380")
	tok.LoseHistory(t)
	w := reg.Watch(ctx, pos)
	defer w.Close()
	if ch, err := w.Next(ctx); !errors.Is(err, agent.ErrHistoryLost) {
		t.Errorf("watch from a forgotten position: %+v, %v; want ErrHistoryLost", ch, err)
	}
}

func list(t *testing.T, reg agent.Registry) []agent.Entry {
	t.Helper()
	es, _, err := reg.List(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return es
}

func find(es []agent.Entry, key string) (agent.Entry, bool) {
	i := slices.IndexFunc(es, func(e agent.Entry) bool { return e.Key == key })
	if i < 0 {
		return agent.Entry{}, false
	}
	return es[i], true
}

func waitEntries(t *testing.T, reg agent.Registry, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(list(t, reg)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the token never held %d entries", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type host struct{ name, addr string }

// result is what one host's bootstrap did.
type result struct {
	env map[string]string
	log string
	err error
}

// bootstrapTimeout is the --timeout of every host the suite runs.
const bootstrapTimeout = time.Minute

// bootstrapAll runs the hosts' bootstraps on tok at once.
func bootstrapAll(t *testing.T, tok Token, hosts []host) []result {
	rs := make([]result, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { rs[i] = bootstrapOne(t, tok, h) })
	}
	wg.Wait()
	return rs
}

// bootstrap is bootstrapOne of host name at addr, its error apart.
func bootstrap(t *testing.T, tok Token, name, addr string) (result, error) {
	r := bootstrapOne(t, tok, host{name, addr})
	return r, r.err
}

// bootstrapOne runs the agent's bootstrap for host h on tok, with files in
// a temporary directory, and returns its env file's variables.
func bootstrapOne(t *testing.T, tok Token, h host) result {
	reg := tok.Open(t)
	dir := t.TempDir()
	cfg := agent.Config{
		Name: h.name, AdvertiseAddress: h.addr, PeerPort: 2380, ClientPort: 2379, Scheme: "http",
		DataDir: filepath.Join(dir, "data"), EnvFile: filepath.Join(dir, "etcd.env"), StateDir: filepath.Join(dir, "state"),
		Timeout: bootstrapTimeout, OnFull: agent.OnFullExit, JoinAs: agent.JoinAsLearner, Output: agent.OutputStatic,
	}
	if strings.Contains(reg.Token(), "://") {
		cfg.Discovery = reg.Token()
	} else {
		cfg.DiscoveryToken, cfg.DiscoveryEndpoints = reg.Token(), []string{"http://127.0.0.1:1"}
	}
	var logs strings.Builder
	var mu sync.Mutex
	deps := agent.Deps{
		Registry: reg, Output: agent.EnvFile{Path: cfg.EnvFile, Version: "test"}, Clock: agent.SystemClock{},
		Log: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		}), nil)),
	}
	_, err := agent.Bootstrap(context.Background(), cfg, deps)
	mu.Lock()
	r := result{log: logs.String(), err: err}
	mu.Unlock()
	if err != nil {
		if _, serr := os.Stat(cfg.EnvFile); !errors.Is(serr, os.ErrNotExist) {
			r.err = fmt.Errorf("%w; and it wrote an env file", err)
		}
		return r
	}
	data, err := os.ReadFile(cfg.EnvFile)
	if err == nil {
		var vars []envfile.Var
		if vars, err = envfile.Parse(data); err == nil {
			r.env = map[string]string{}
			for _, v := range vars {
				r.env[v.Name] = v.Value
			}
		}
	}
	r.err = err
	return r
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var _ io.Writer = writerFunc(nil)
