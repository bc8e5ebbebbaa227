package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

func newTokenClient(t *testing.T, endpoint string, size int) *Client {
	t.Helper()
	c, err := New(fmt.Sprintf("%s/v2/keys/discovery/t%d", endpoint, time.Now().UnixNano()), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.MakeDir(ctx, size); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAgainstRealEtcd(t *testing.T) {
	endpoint, _ := testenv.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newTokenClient(t, endpoint, 3)

	if n, err := c.Size(ctx); err != nil || n != 3 {
		t.Fatalf("Size = %d, %v; want 3", n, err)
	}
	if err := c.MakeDir(ctx, 5); !IsCode(err, CodeNodeExist) {
		t.Errorf("second MakeDir = %v; want error %d (the size is never overwritten)", err, CodeNodeExist)
	}
	a, err := c.Create(ctx, "aaa", "a=http://127.0.0.1:2380")
	if err != nil || a.CreatedIndex == 0 {
		t.Fatalf("Create = %+v, %v", a, err)
	}
	if _, err := c.Create(ctx, "aaa", "x=http://127.0.0.9:2380"); !IsCode(err, CodeNodeExist) {
		t.Errorf("second Create = %v; want error %d", err, CodeNodeExist)
	}
	nodes, idx, err := c.List(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Name() != "aaa" || idx < a.CreatedIndex {
		t.Fatalf("List = %+v, %d, %v; want only aaa (the hidden _config left out)", nodes, idx, err)
	}

	// A watch opened without an index is in place once OpenWatch returns,
	// and streams every later event on this one request.
	w, err := c.OpenWatch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if w.Index() < idx {
		t.Errorf("watch began at index %d, before the listing's %d", w.Index(), idx)
	}
	b, _ := c.Create(ctx, "bbb", "b=http://127.0.0.2:2380")
	if _, err := c.Create(ctx, "ccc", "c=http://127.0.0.3:2380"); err != nil {
		t.Fatal(err)
	}
	var keys []string
	err = w.Each(ctx, func(ev Event) bool {
		keys = append(keys, ev.Node.Name())
		return len(keys) < 2
	})
	w.Close()
	if err != nil || fmt.Sprint(keys) != "[bbb ccc]" {
		t.Errorf("live stream delivered %v, %v; want [bbb ccc] on one request", keys, err)
	}

	// An event still in the history ends the call after it: etcd does not
	// keep streaming such a watch.
	calls := 0
	next, err := c.Watch(ctx, b.CreatedIndex, func(ev Event) bool { calls++; return true })
	if err != nil || calls != 1 || next != b.CreatedIndex+1 {
		t.Errorf("history watch: %d events, next %d, %v; want 1 event and next %d", calls, next, err, b.CreatedIndex+1)
	}

	if err := c.Delete(ctx, "aaa", a.ModifiedIndex+100); !IsCode(err, 101) {
		t.Errorf("Delete with a wrong index = %v; want compare failed (101)", err)
	}
	if err := c.Delete(ctx, "aaa", a.ModifiedIndex); err != nil {
		t.Errorf("Delete = %v", err)
	}
	missing, _ := New(endpoint+"/v2/keys/discovery/nosuch", nil)
	if _, err := missing.Size(ctx); !IsCode(err, CodeKeyNotFound) {
		t.Errorf("Size of a missing token = %v; want key not found", err)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		fmt.Fprint(w, "unable to GET token")
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/0123456789abcdef0123456789abcdef", nil)
	if err != nil {
		t.Fatal(err)
	}
	for code, temporary := range map[int]bool{400: false, 404: false, 500: true, 503: true} {
		status.Store(int32(code))
		_, err := c.Size(context.Background())
		var re *Error
		if !errors.As(err, &re) || re.Status != code || Temporary(err) != temporary {
			t.Errorf("HTTP %d: %v (temporary %v); want a registry error, temporary=%v", code, err, Temporary(err), temporary)
		}
	}
	srv.Close()
	if _, err := c.Size(context.Background()); !Temporary(err) {
		t.Errorf("closed server: %v should be temporary", err)
	}
}

func TestParseURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"http://127.0.0.1:2379/v2/keys/discovery/abc":                true,
		"https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579": true,
		"http://127.0.0.1:2379/v2/keys/discovery/abc/":               false,
		"http://127.0.0.1:2379/v2/keys/d/abc?x=1":                    false,
		"http://127.0.0.1:2379/v2/keys/d/abc#f":                      false,
		"http://u:p@127.0.0.1:2379/v2/keys/d/abc":                    false,
		"http://127.0.0.1:2379":                                      false,
		"ftp://127.0.0.1/x":                                          false,
		"/v2/keys/x":                                                 false,
	} {
		if _, err := ParseURL(raw); (err == nil) != ok {
			t.Errorf("ParseURL(%q) = %v; want ok=%v", raw, err, ok)
		}
	}
}
