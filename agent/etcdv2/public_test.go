package etcdv2_test

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

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv2"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// node and event are the v2 JSON a discovery service answers with.
type node struct {
	Key           string `json:"key"`
	Value         string `json:"value,omitempty"`
	Dir           bool   `json:"dir,omitempty"`
	CreatedIndex  uint64 `json:"createdIndex"`
	ModifiedIndex uint64 `json:"modifiedIndex"`
	Nodes         []node `json:"nodes,omitempty"`
}

type event struct {
	Action string `json:"action"`
	Node   node   `json:"node"`
}

// publicService imitates what a discovery.etcd.io-style service does
// differently from etcd (the spec's section on the public service): PUT
// is a plain set that ignores prevExist, listings hide _ keys, a long poll
// with nothing to report ends with an empty 200 body, and errors are
// plain-text 400s. Only the behaviour the agent must tolerate is imitated;
// the protocol itself is tested against etcd (the conformance suite).
type publicService struct {
	token string
	size  int

	mu         sync.Mutex
	index      uint64
	nodes      map[string]node
	events     []event
	changed    chan struct{}
	emptyPolls int
}

func newPublicService(t *testing.T, size int) (*publicService, string) {
	s := &publicService{token: "0123456789abcdef0123456789abcdef", size: size, index: 1, nodes: map[string]node{}, changed: make(chan struct{})}
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
		json.NewEncoder(w).Encode(event{Action: "get", Node: node{Key: "/" + s.token + "/_config/size", Value: strconv.Itoa(s.size)}})
	case rest == "" && r.Method == http.MethodGet && r.Form.Get("wait") == "true":
		s.mu.Unlock()
		s.poll(w, r)
	case rest == "" && r.Method == http.MethodGet:
		dir := node{Key: "/" + s.token, Dir: true}
		for _, n := range s.nodes {
			dir.Nodes = append(dir.Nodes, n)
		}
		s.mu.Unlock()
		json.NewEncoder(w).Encode(event{Action: "get", Node: dir})
	case r.Method == http.MethodPut:
		s.index++
		n := node{Key: "/" + s.token + rest, Value: r.PostForm.Get("value"), CreatedIndex: s.index, ModifiedIndex: s.index}
		if old, ok := s.nodes[n.Key]; ok {
			n.CreatedIndex = old.CreatedIndex
		}
		s.nodes[n.Key] = n
		s.record(event{Action: "set", Node: n})
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(event{Action: "set", Node: n})
	case r.Method == http.MethodDelete:
		n, ok := s.nodes["/"+s.token+rest]
		if ok {
			s.index++
			delete(s.nodes, n.Key)
			n.ModifiedIndex = s.index
			s.record(event{Action: "delete", Node: n})
		}
		s.mu.Unlock()
		json.NewEncoder(w).Encode(event{Action: "delete", Node: n})
	default:
		s.mu.Unlock()
		http.Error(w, "unable to GET token", http.StatusBadRequest)
	}
}

func (s *publicService) record(ev event) {
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

func hostConfig(t *testing.T, name, addr, discovery string) agent.Config {
	dir := t.TempDir()
	return agent.Config{
		Name: name, Discovery: discovery, AdvertiseAddress: addr,
		PeerPort: 2380, ClientPort: 2379, Scheme: "http", Output: agent.OutputStatic,
		DataDir: filepath.Join(dir, "data"), EnvFile: filepath.Join(dir, "etcd.env"), StateDir: filepath.Join(dir, "state"),
		Timeout: 20 * time.Second, OnFull: agent.OnFullExit, JoinAs: agent.JoinAsLearner,
	}
}

func bootstrap(t *testing.T, cfg agent.Config) (*agent.Plan, error) {
	reg, err := etcdv2.New(cfg.Discovery, agent.Access{})
	if err != nil {
		t.Fatal(err)
	}
	return agent.Bootstrap(context.Background(), cfg, agent.Deps{
		Registry: reg, Output: agent.EnvFile{Path: cfg.EnvFile, Version: "test"},
		Clock: agent.SystemClock{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// Three hosts form one cluster through a service that cuts long polls
// short and ignores prevExist; a fourth finds the token full and leaves it
// as it was.
func TestBootstrapOnAPublicDiscoveryService(t *testing.T) {
	svc, discovery := newPublicService(t, 3)
	cfgs := []agent.Config{
		hostConfig(t, "a", "10.0.0.1", discovery),
		hostConfig(t, "b", "10.0.0.2", discovery),
		hostConfig(t, "c", "10.0.0.3", discovery),
	}
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() {
			if i == 2 {
				time.Sleep(300 * time.Millisecond) // the others sit through empty polls
			}
			_, errs[i] = bootstrap(t, cfg)
		})
	}
	wg.Wait()
	var cluster string
	for i, cfg := range cfgs {
		if errs[i] != nil {
			t.Fatalf("%s: %v", cfg.Name, errs[i])
		}
		got := testenv.ReadEnvFile(t, cfg.EnvFile)["ETCD_INITIAL_CLUSTER"]
		if cluster == "" {
			cluster = got
		}
		if got != cluster || strings.Count(got, "=") != 3 {
			t.Errorf("%s: ETCD_INITIAL_CLUSTER=%s; want the same three members everywhere (%s)", cfg.Name, got, cluster)
		}
	}
	svc.mu.Lock()
	polls := svc.emptyPolls
	svc.mu.Unlock()
	if polls == 0 {
		t.Error("the service never answered an empty poll; the test proves nothing about tolerating them")
	}

	late := hostConfig(t, "d", "10.0.0.4", discovery)
	if _, err := bootstrap(t, late); !errors.Is(err, agent.ErrTokenFull) {
		t.Errorf("fourth host: %v; want ErrTokenFull", err)
	}
	svc.mu.Lock()
	n := len(svc.nodes)
	svc.mu.Unlock()
	if n != 3 {
		t.Errorf("service holds %d registrations after the fourth host; want 3", n)
	}
	if _, err := os.Stat(late.EnvFile); !os.IsNotExist(err) {
		t.Errorf("fourth host wrote an env file")
	}
}

// A plain-text 400 (a token the service does not know) is unusable
// registry data, exit 6, not a fault to retry.
func TestUnknownTokenOnAPublicService(t *testing.T) {
	_, discovery := newPublicService(t, 3)
	cfg := hostConfig(t, "a", "10.0.0.1", strings.Replace(discovery, "0123", "ffff", 1))
	start := time.Now()
	_, err := bootstrap(t, cfg)
	if !errors.Is(err, agent.ErrRegistryData) {
		t.Errorf("Bootstrap on an unknown token: %v; want ErrRegistryData", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s: a plain-text refusal was retried", d)
	}
}
