package bench

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingProxy is a reverse proxy in front of the discovery registry that
// records every request it forwards. Discovery URLs handed to the members
// point at it, so it sees exactly the registry traffic of a bootstrap.
// Answers are passed through unbuffered (FlushInterval -1), so streamed
// and long-polled watches behave as they do against the registry itself.
type countingProxy struct {
	URL string // http://127.0.0.1:port

	mu   sync.Mutex
	reqs []proxiedRequest
}

// proxiedRequest is one request the proxy forwarded.
type proxiedRequest struct {
	Method string
	Path   string
	Query  url.Values
}

// newCountingProxy starts a counting proxy to target on 127.0.0.1 and stops
// it when tb ends.
func newCountingProxy(tb testing.TB, target string) *countingProxy {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatalf("registry URL %q: %v", target, err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		FlushInterval: -1,
		Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &countingProxy{URL: "http://" + l.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, proxiedRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()})
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return p
}

// requestsUnder returns the requests whose path is dir or below it.
func (p *countingProxy) requestsUnder(dir string) []proxiedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []proxiedRequest
	for _, r := range p.reqs {
		if r.Path == dir || strings.HasPrefix(r.Path, dir+"/") {
			out = append(out, r)
		}
	}
	return out
}

// kind names what a request to a token directory dir did, in the terms of
// the v2 discovery protocol.
func (r proxiedRequest) kind(dir string) string {
	switch {
	case r.Method == http.MethodGet && r.Query.Get("wait") == "true":
		return "watch"
	case r.Method == http.MethodGet && r.Path == dir+"/_config/size":
		return "size"
	case r.Method == http.MethodGet && r.Path == dir:
		return "list"
	case r.Method == http.MethodGet:
		return "get"
	case r.Method == http.MethodPut:
		return "register"
	case r.Method == http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(r.Method)
}

// TestCountingProxyStreamsUnbuffered checks the proxy on a fake registry:
// each streamed line reaches the client while the answer is still open, and
// only requests under the given directory are counted.
func TestCountingProxyStreamsUnbuffered(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"action":"create"}`)
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprintln(w, `{"action":"set"}`)
	}))
	defer backend.Close()
	defer close(release)
	p := newCountingProxy(t, backend.URL)

	resp, err := http.Get(p.URL + "/v2/keys/discovery/tok?wait=true&recursive=true&stream=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if l != `{"action":"create"}` {
			t.Fatalf("first streamed line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event of an open answer did not pass the proxy")
	}

	for _, path := range []string{"/v2/keys/discovery/tok/_config/size", "/v2/keys/discovery/tokother", "/v2/keys/discovery/other"} {
		go func() {
			if r, err := http.Get(p.URL + path); err == nil {
				r.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n := len(p.reqs)
		p.mu.Unlock()
		if n == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := p.requestsUnder("/v2/keys/discovery/tok")
	var kinds []string
	for _, r := range got {
		kinds = append(kinds, r.kind("/v2/keys/discovery/tok"))
	}
	if strings.Join(kinds, ",") != "watch,size" {
		t.Errorf("requests under the token: %v, want watch,size", kinds)
	}
}
