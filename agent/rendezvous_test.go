package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// memRegistry is an in-memory Registry for unit tests of the rendezvous'
// decisions. It follows etcd's semantics closely enough for that (a
// store-wide position, create-only registration, compare-and-delete,
// watches from a position); the protocol itself is tested against real
// etcd in agent/etcdv2 and cmd.
type memRegistry struct {
	mu      sync.Mutex
	size    int
	pos     uint64
	entries map[string]Entry
	changes []Change // every change, in order
	changed chan struct{}
	lost    uint64 // watches from before this position get ErrHistoryLost
}

func newMemRegistry(size int) *memRegistry {
	return &memRegistry{size: size, pos: 1, entries: map[string]Entry{}, changed: make(chan struct{})}
}

func (m *memRegistry) Token() string { return testToken }

func (m *memRegistry) Size(context.Context) (int, error) { return m.size, nil }

func (m *memRegistry) List(context.Context) ([]Entry, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var es []Entry
	for _, e := range m.entries {
		es = append(es, e)
	}
	return es, m.pos, nil
}

func (m *memRegistry) put(e Entry) Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pos++
	e.Created, e.Modified = m.pos, m.pos
	m.entries[e.Key] = e
	m.record(Change{Entry: e})
	return e
}

func (m *memRegistry) record(ch Change) {
	m.changes = append(m.changes, ch)
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *memRegistry) Register(_ context.Context, key, value string) (Entry, error) {
	m.mu.Lock()
	if e, ok := m.entries[key]; ok {
		m.mu.Unlock()
		return e, ErrKeyExists
	}
	m.mu.Unlock()
	return m.put(Entry{Key: key, Value: value}), nil
}

func (m *memRegistry) Remove(_ context.Context, e Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.entries[e.Key]
	if !ok || cur.Modified != e.Modified {
		return ErrChanged
	}
	delete(m.entries, e.Key)
	m.pos++
	cur.Modified = m.pos
	m.record(Change{Entry: cur, Deleted: true})
	return nil
}

func (m *memRegistry) Watch(_ context.Context, after uint64) Watcher {
	return &memWatcher{m: m, after: after}
}

type memWatcher struct {
	m     *memRegistry
	after uint64
}

func (w *memWatcher) Close() {}

func (w *memWatcher) Next(ctx context.Context) (Change, error) {
	for {
		w.m.mu.Lock()
		if w.after < w.m.lost {
			w.m.mu.Unlock()
			return Change{}, ErrHistoryLost
		}
		for _, ch := range w.m.changes {
			if ch.Modified > w.after {
				w.after = ch.Modified
				w.m.mu.Unlock()
				return ch, nil
			}
		}
		changed := w.m.changed
		w.m.mu.Unlock()
		select {
		case <-ctx.Done():
			return Change{}, ctx.Err()
		case <-changed:
		}
	}
}

func (m *memRegistry) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ks []string
	for _, e := range m.entries {
		ks = append(ks, strings.SplitN(e.Value, "=", 2)[0])
	}
	sort.Strings(ks)
	return ks
}

// waitKey waits until the registry holds a key (the host under test
// registered), or ctx ends.
func (m *memRegistry) waitKey(ctx context.Context) {
	for {
		m.mu.Lock()
		n, changed := len(m.entries), m.changed
		m.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func host(name, addr string) Member {
	return Member{Name: name, PeerURLs: []string{"http://" + addr + ":2380"}}
}

func run(ctx context.Context, reg Registry, self Member) (outcome, error) {
	return newRendezvous(reg, self, SystemClock{}, quietLog()).run(ctx)
}

// Hosts that register at once all decide the same cluster.
func TestRendezvousAgrees(t *testing.T) {
	reg := newMemRegistry(3)
	hosts := []Member{host("a", "10.0.0.1"), host("b", "10.0.0.2"), host("c", "10.0.0.3"), host("d", "10.0.0.4")}
	outs := make([]outcome, len(hosts))
	errs := make([]error, len(hosts))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { outs[i], errs[i] = run(ctx, reg, h) })
	}
	wg.Wait()
	full, cluster := 0, ""
	for i := range hosts {
		if errs[i] != nil {
			t.Fatalf("%s: %v", hosts[i].Name, errs[i])
		}
		if outs[i].full {
			full++
			continue
		}
		if got := InitialCluster(outs[i].members); cluster == "" {
			cluster = got
		} else if got != cluster {
			t.Errorf("%s decided %s; another host %s", hosts[i].Name, got, cluster)
		}
	}
	if full != 1 || len(reg.keys()) != 3 {
		t.Errorf("%d hosts found the token full, it holds %v; want one full and three registrations", full, reg.keys())
	}
}

// A host that fails before the token filled takes its key back; a host
// whose name another registered first leaves; the earlier one goes on.
func TestRendezvousLeavesNothingBehind(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		reg := newMemRegistry(2)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := run(ctx, reg, host("a", "10.0.0.1"))
		if !errors.Is(err, ErrTimeout) || len(reg.keys()) != 0 {
			t.Errorf("err %v, token holds %v; want ErrTimeout and nothing", err, reg.keys())
		}
	})
	t.Run("same name", func(t *testing.T) {
		reg := newMemRegistry(3)
		reg.put(entry("b", "10.0.0.9", 0)) // the earlier host named b
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := run(ctx, reg, host("b", "10.0.0.2"))
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `name "b"`) {
			t.Errorf("err %v; want ErrConflict naming the name", err)
		}
		if ks := reg.keys(); len(ks) != 1 {
			t.Errorf("token holds %v; want only the earlier host's key", ks)
		}
	})
	t.Run("poison arrives while waiting", func(t *testing.T) {
		reg := newMemRegistry(3)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		go func() {
			reg.waitKey(ctx)
			reg.put(Entry{Key: "junk", Value: "x=http://10.0.0.8:2380"})
		}()
		_, err := run(ctx, reg, host("a", "10.0.0.1"))
		if !errors.Is(err, ErrRegistryData) || len(reg.keys()) != 1 {
			t.Errorf("err %v, token holds %v; want ErrRegistryData and only the poison left", err, reg.keys())
		}
	})
}

// A key found from an earlier run is resumed, not registered again; a key
// with this member ID and another value is a conflict.
func TestRendezvousResumes(t *testing.T) {
	reg := newMemRegistry(2)
	a := host("a", "10.0.0.1")
	reg.put(entry("a", "10.0.0.1", 0))
	reg.put(entry("b", "10.0.0.2", 0))
	out, err := run(context.Background(), reg, a)
	if err != nil || out.full || len(out.members) != 2 {
		t.Fatalf("resume: %+v, %v", out, err)
	}
	renamed := host("x", "10.0.0.1") // same peer URL, another name
	if _, err := run(context.Background(), reg, renamed); !errors.Is(err, ErrConflict) {
		t.Errorf("same peer URL, another name: %v; want ErrConflict", err)
	}
}

// A watch that fell behind the registry's history lists the token again.
func TestRendezvousRelistsWhenHistoryIsLost(t *testing.T) {
	reg := newMemRegistry(2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		reg.waitKey(ctx)
		reg.mu.Lock()
		reg.lost = reg.pos + 10 // the next watch finds its start compacted
		reg.pos += 10
		reg.mu.Unlock()
		reg.put(entry("b", "10.0.0.2", 0))
	}()
	out, err := run(ctx, reg, host("a", "10.0.0.1"))
	if err != nil || len(out.members) != 2 {
		t.Fatalf("%+v, %v; want the two members", out, err)
	}
}
