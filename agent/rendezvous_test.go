package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/envfile"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/registry"
)

// publicService imitates what a discovery.etcd.io-style service does
// differently from etcd (spec section 3): PUT is a plain set that ignores
// prevExist, listings hide _ keys, a long poll with nothing to report ends
// with an empty 200 body, a watch answers one event per request and ignores
// stream=true, and errors are plain-text 400s. Only the behaviour the agent
// must tolerate is imitated; the real protocol is tested against etcd.
type publicService struct {
	token string
	size  int

	mu         sync.Mutex
	index      uint64
	nodes      map[string]registry.Node
	events     []registry.Event
	changed    chan struct{}
	emptyPolls int
}

func newPublicService(t *testing.T, size int) (*publicService, string) {
	s := &publicService{token: "0123456789abcdef0123456789abcdef", size: size, index: 1, nodes: map[string]registry.Node{}, changed: make(chan struct{})}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL + "/" + s.token
}

func (s *publicService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/"+s.token)
	if !ok {
		http.Error(w, "unable to GET token", http.StatusBadRequest)
		return
	}
	_ = r.ParseForm()
	s.mu.Lock()
	w.Header().Set("X-Etcd-Index", strconv.FormatUint(s.index, 10))
	switch {
	case rest == "/_config/size" && r.Method == http.MethodGet:
		s.mu.Unlock()
		json.NewEncoder(w).Encode(registry.Event{Action: "get", Node: registry.Node{Key: "/" + s.token + "/_config/size", Value: strconv.Itoa(s.size)}})
	case rest == "" && r.Method == http.MethodGet && r.Form.Get("wait") == "true":
		s.mu.Unlock()
		s.poll(w, r)
	case rest == "" && r.Method == http.MethodGet:
		dir := registry.Node{Key: "/" + s.token, Dir: true}
		for _, n := range s.nodes {
			dir.Nodes = append(dir.Nodes, n)
		}
		s.mu.Unlock()
		json.NewEncoder(w).Encode(registry.Event{Action: "get", Node: dir})
	case r.Method == http.MethodPut:
		s.index++
		n := registry.Node{Key: "/" + s.token + rest, Value: r.PostForm.Get("value"), CreatedIndex: s.index, ModifiedIndex: s.index}
		if old, ok := s.nodes[n.Key]; ok {
			n.CreatedIndex = old.CreatedIndex
		}
		s.nodes[n.Key] = n
		s.record(registry.Event{Action: "set", Node: n})
		s.mu.Unlock()
		json.NewEncoder(w).Encode(registry.Event{Action: "set", Node: n})
	case r.Method == http.MethodDelete:
		n, ok := s.nodes["/"+s.token+rest]
		if ok {
			s.index++
			delete(s.nodes, n.Key)
			n.ModifiedIndex = s.index
			s.record(registry.Event{Action: "delete", Node: n})
		}
		s.mu.Unlock()
		json.NewEncoder(w).Encode(registry.Event{Action: "delete", Node: n})
	default:
		s.mu.Unlock()
		http.Error(w, "unable to GET token", http.StatusBadRequest)
	}
}

func (s *publicService) record(ev registry.Event) {
	s.events = append(s.events, ev)
	close(s.changed)
	s.changed = make(chan struct{})
}

// poll answers the first event at or after waitIndex, or an empty body
// after a short while.
func (s *publicService) poll(w http.ResponseWriter, r *http.Request) {
	from, _ := strconv.ParseUint(r.Form.Get("waitIndex"), 10, 64)
	cut := time.After(100 * time.Millisecond)
	for {
		s.mu.Lock()
		for _, ev := range s.events {
			if ev.Node.ModifiedIndex >= from {
				s.mu.Unlock()
				json.NewEncoder(w).Encode(ev)
				return
			}
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-cut:
			s.mu.Lock()
			s.emptyPolls++
			s.mu.Unlock()
			return
		case <-r.Context().Done():
			return
		}
	}
}

func testConfig(t *testing.T, name, addr, discovery string) Config {
	dir := t.TempDir()
	return Config{
		Name: name, Discovery: discovery, AdvertiseAddress: addr,
		PeerPort: 2380, ClientPort: 2379, Scheme: "http",
		DataDir: filepath.Join(dir, "data"), EnvFile: filepath.Join(dir, "etcd.env"), StateDir: filepath.Join(dir, "state"),
		Timeout: 20 * time.Second, OnFull: OnFullExit,
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestRendezvousToleratesAPublicDiscoveryService(t *testing.T) {
	svc, discovery := newPublicService(t, 3)
	cfgs := []Config{
		testConfig(t, "a", "10.0.0.1", discovery),
		testConfig(t, "b", "10.0.0.2", discovery),
		testConfig(t, "c", "10.0.0.3", discovery),
	}
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() {
			if i == 2 {
				time.Sleep(300 * time.Millisecond) // the others sit through empty polls
			}
			_, errs[i] = Bootstrap(context.Background(), cfg, "test", quietLog())
		})
	}
	wg.Wait()
	var cluster string
	for i, cfg := range cfgs {
		if errs[i] != nil {
			t.Fatalf("%s: %v", cfg.Name, errs[i])
		}
		b, err := os.ReadFile(cfg.EnvFile)
		if err != nil {
			t.Fatal(err)
		}
		vars, err := envfile.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vars {
			if v.Name != "ETCD_INITIAL_CLUSTER" {
				continue
			}
			if cluster == "" {
				cluster = v.Value
			}
			if v.Value != cluster || strings.Count(v.Value, "=") != 3 {
				t.Errorf("%s: ETCD_INITIAL_CLUSTER=%s; want the same three members everywhere (%s)", cfg.Name, v.Value, cluster)
			}
		}
	}
	if svc.emptyPolls == 0 {
		t.Error("the service never answered an empty poll; the test proves nothing about tolerating them")
	}

	late := testConfig(t, "d", "10.0.0.4", discovery)
	if _, err := Bootstrap(context.Background(), late, "test", quietLog()); !errors.Is(err, ErrTokenFull) {
		t.Errorf("fourth host: %v; want ErrTokenFull", err)
	}
	if len(svc.nodes) != 3 {
		t.Errorf("service holds %d registrations after the fourth host; want 3", len(svc.nodes))
	}
	if _, err := os.Stat(late.EnvFile); !os.IsNotExist(err) {
		t.Errorf("fourth host wrote an env file")
	}
}

func TestUnknownTokenOnAPublicServiceIsRegistryData(t *testing.T) {
	_, discovery := newPublicService(t, 3)
	cfg := testConfig(t, "a", "10.0.0.1", strings.Replace(discovery, "0123", "ffff", 1))
	_, err := Bootstrap(context.Background(), cfg, "test", quietLog())
	if !errors.Is(err, ErrRegistryData) || !strings.Contains(err.Error(), "unable to GET token") {
		t.Errorf("Bootstrap on an unknown token: %v; want ErrRegistryData quoting the service", err)
	}
}

func TestCachedResultNeedsNoRegistry(t *testing.T) {
	svc, discovery := newPublicService(t, 1)
	cfg := testConfig(t, "a", "10.0.0.1", discovery)
	first, err := Bootstrap(context.Background(), cfg, "test", quietLog())
	if err != nil || first.Source != "registry" {
		t.Fatalf("first run: %+v, %v", first, err)
	}
	svc.mu.Lock()
	svc.token = "gone" // every request now fails
	svc.mu.Unlock()
	os.Remove(cfg.EnvFile)
	again, err := Bootstrap(context.Background(), cfg, "test", quietLog())
	if err != nil || again.Source != "cache" || again.State != "new" {
		t.Fatalf("rerun: %+v, %v; want the cached result", again, err)
	}
	// Another token or another address must not use the cache.
	other := cfg
	other.AdvertiseAddress = "10.0.0.9"
	other.Timeout = time.Second
	if _, err := Bootstrap(context.Background(), other, "test", quietLog()); err == nil {
		t.Error("a host with another address used the cached result")
	}
	// A damaged cache is refused with a message that says what to do.
	if err := os.WriteFile(filepath.Join(cfg.StateDir, stateFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Bootstrap(context.Background(), cfg, "test", quietLog()); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("damaged cache: %v; want an error saying to remove it", err)
	}
}

func TestFirstNAndCheckNames(t *testing.T) {
	node := func(key string, idx uint64, value string) registry.Node {
		return registry.Node{Key: "/d/tok/" + key, Value: value, CreatedIndex: idx, ModifiedIndex: idx}
	}
	known := map[string]registry.Node{
		"k3": node("k3", 30, "c=http://10.0.0.3:2380"),
		"k1": node("k1", 10, "a=http://10.0.0.1:2380"),
		"k2": node("k2", 20, "a=http://10.0.0.2:2380"),
	}
	first := firstN(known, 2)
	if first[0].Name()+" "+first[1].Name() != "k1 k2" {
		t.Fatalf("firstN = %v; want k1 k2 by creation index", first)
	}
	for _, tc := range []struct {
		key       string
		selfLater bool
		says      string
	}{
		{"k2", true, "already registered by another host"},
		{"k1", false, "registered this host's name"},
		{"k9", false, "registered twice"},
	} {
		r := &rendezvous{key: tc.key, self: Member{Name: "a"}}
		later, err := r.checkNames(first)
		if later != tc.selfLater || !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("self %s: later=%v err=%v; want later=%v and %q", tc.key, later, err, tc.selfLater, tc.says)
		}
	}
}
