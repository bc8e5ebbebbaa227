// Package registry speaks the etcd v2 keys API to one discovery token
// directory: the layout etcd's own --discovery client uses, served by etcd
// 3.4/3.5 with --enable-v2 or by a discovery.etcd.io-style service.
//
// Layout under the token directory D (the path of the discovery URL):
//
//	D/_config/size   decimal member count, written when the token is made
//	D/<memberID>     name=url[,name=url...] of one registered member
//
// Every key is addressed as endpoint + D + "/" + suffix; no /v2/keys is
// added, so a self-hosted token URL carries it in its path.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Node is one key of the token directory.
type Node struct {
	Key           string `json:"key"`
	Value         string `json:"value"`
	Dir           bool   `json:"dir,omitempty"`
	CreatedIndex  uint64 `json:"createdIndex"`
	ModifiedIndex uint64 `json:"modifiedIndex"`
	Nodes         []Node `json:"nodes,omitempty"`
}

// Name is the last element of the node's key: the member ID for a member.
func (n Node) Name() string { return path.Base(n.Key) }

// Event is one change reported by a watch.
type Event struct {
	Action string `json:"action"`
	Node   Node   `json:"node"`
}

// Deleted reports whether the event removed its key.
func (e Event) Deleted() bool {
	switch e.Action {
	case "delete", "compareAndDelete", "expire":
		return true
	}
	return false
}

// etcd v2 error codes that callers act on.
const (
	CodeKeyNotFound     = 100
	CodeNodeExist       = 105
	CodeEventIndexClear = 401
	codeRaftInternal    = 300
	codeLeaderElect     = 301
	codeWatcherCleared  = 400
	codeStandbyInternal = 402
)

// Error is an answer from the registry that is not a success.
type Error struct {
	Op      string // what was asked, e.g. "GET /v2/keys/d/_config/size"
	Status  int    // HTTP status
	Code    int    // etcd error code, 0 when the body was not an etcd error
	Message string // etcd message or the start of a plain-text body
	Cause   string
}

func (e *Error) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("%s: registry answered %d: etcd error %d: %s (%q)", e.Op, e.Status, e.Code, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s: registry answered %d: %q", e.Op, e.Status, e.Message)
}

// Temporary reports whether retrying the same request may succeed: server
// errors and etcd's "leader election"/"raft internal" codes.
func (e *Error) Temporary() bool {
	if e.Status >= 500 {
		return true
	}
	switch e.Code {
	case codeRaftInternal, codeLeaderElect, codeWatcherCleared, codeStandbyInternal:
		return true
	}
	return false
}

// IsCode reports whether err is a registry Error with the given etcd code.
func IsCode(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Temporary reports whether err is worth retrying: a transport failure, a
// request timeout or a temporary registry answer. Cancellation of the
// caller's context is not.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF)
}

// RequestTimeout bounds every request that is not a watch.
const RequestTimeout = 5 * time.Second

// Client addresses one token directory.
type Client struct {
	base *url.URL // endpoint and token path, as given
	http *http.Client
}

// New returns a client for the token directory at rawURL. hc may be nil for
// a client with default transport settings and no overall timeout (watches
// are bounded by their context, other requests by RequestTimeout).
func New(rawURL string, hc *http.Client) (*Client, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, http: hc}, nil
}

// ParseURL checks a discovery URL: http or https, a host, a token path, and
// no query, fragment or user info (the whole string is hashed into member
// IDs, so it must be reproducible byte for byte).
func ParseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("discovery URL %q: %v", rawURL, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("discovery URL %q: scheme must be http or https", rawURL)
	case u.Host == "":
		return nil, fmt.Errorf("discovery URL %q: no host", rawURL)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("discovery URL %q: remove the query or fragment; etcd hashes the whole URL into member IDs", rawURL)
	case u.User != nil:
		return nil, fmt.Errorf("discovery URL %q: user info is not supported in the URL", rawURL)
	case strings.Trim(u.Path, "/") == "":
		return nil, fmt.Errorf("discovery URL %q: no token path", rawURL)
	case strings.HasSuffix(u.Path, "/"):
		return nil, fmt.Errorf("discovery URL %q: remove the trailing slash; every member must use the identical URL", rawURL)
	case u.String() != rawURL:
		return nil, fmt.Errorf("discovery URL %q: write it in canonical form, %q; every member must use the identical URL", rawURL, u.String())
	}
	return u, nil
}

// URL is the discovery URL the client was made with.
func (c *Client) URL() string { return c.base.String() }

func (c *Client) keyURL(suffix string, q url.Values) string {
	u := *c.base
	if suffix != "" {
		u.Path = c.base.Path + "/" + suffix
		u.RawPath = ""
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Size reads D/_config/size, a positive integer.
func (c *Client) Size(ctx context.Context) (int, error) {
	var r response
	if _, err := c.do(ctx, http.MethodGet, "_config/size", url.Values{"quorum": {"false"}}, nil, &r); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(r.Node.Value))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: %s/_config/size holds %q, want a positive integer", ErrBadSize, c.base.Path, r.Node.Value)
	}
	return n, nil
}

// ErrBadSize reports a size key that is not a positive integer.
var ErrBadSize = errors.New("bad size key")

// List returns the children of the token directory (the registry hides
// _config) and the registry index the listing reflects.
func (c *Client) List(ctx context.Context) ([]Node, uint64, error) {
	var r response
	idx, err := c.do(ctx, http.MethodGet, "", url.Values{"quorum": {"false"}}, nil, &r)
	if err != nil {
		return nil, 0, err
	}
	var nodes []Node
	for _, n := range r.Node.Nodes {
		if !n.Dir && !strings.HasPrefix(n.Name(), "_") {
			nodes = append(nodes, n)
		}
	}
	return nodes, idx, nil
}

// Get reads one key of the token directory.
func (c *Client) Get(ctx context.Context, key string) (Node, error) {
	var r response
	_, err := c.do(ctx, http.MethodGet, key, url.Values{"quorum": {"false"}}, nil, &r)
	return r.Node, err
}

// Create writes key=value only if key does not exist yet (prevExist=false).
// A key that exists yields an Error with CodeNodeExist.
func (c *Client) Create(ctx context.Context, key, value string) (Node, error) {
	var r response
	_, err := c.do(ctx, http.MethodPut, key, url.Values{"prevExist": {"false"}}, url.Values{"value": {value}}, &r)
	return r.Node, err
}

// Delete removes key if it was last modified at index (compare-and-delete),
// so a key that someone else rewrote is left alone.
func (c *Client) Delete(ctx context.Context, key string, index uint64) error {
	_, err := c.do(ctx, http.MethodDelete, key, url.Values{"prevIndex": {strconv.FormatUint(index, 10)}}, nil, nil)
	return err
}

// MakeDir creates the token directory's size key (create-only).
func (c *Client) MakeDir(ctx context.Context, size int) error {
	_, err := c.Create(ctx, "_config/size", strconv.Itoa(size))
	return err
}

// Watcher is one open watch request on the token directory.
type Watcher struct {
	op    string
	body  io.ReadCloser
	dec   *json.Decoder
	start uint64 // the registry's index when the watch began (X-Etcd-Index)
	next  uint64 // the index to wait from in the next request
	ended bool
}

// OpenWatch starts a recursive watch of the token directory and returns
// once the registry has answered with its headers, that is once the watch
// is in place: every change after Index() will be reported. waitIndex 0
// means "changes from now on", which etcd always serves live; a waitIndex
// still in etcd's event history is answered from the history, one event,
// after which the answer ends (the watcher never joins the live hub).
//
// It asks for a stream, so a real etcd sends every live event on this one
// request; a server that answers one event per request, or an empty body
// after a while, just ends the answer sooner.
func (c *Client) OpenWatch(ctx context.Context, waitIndex uint64) (*Watcher, error) {
	q := url.Values{"wait": {"true"}, "recursive": {"true"}, "stream": {"true"}}
	if waitIndex > 0 {
		q.Set("waitIndex", strconv.FormatUint(waitIndex, 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.keyURL("", q), nil)
	if err != nil {
		return nil, err
	}
	op := "watch " + c.base.Path
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readError(op, resp)
	}
	start, _ := strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
	next := waitIndex
	if next == 0 {
		next = start + 1
	}
	return &Watcher{op: op, body: resp.Body, dec: json.NewDecoder(resp.Body), start: start, next: next}, nil
}

// Index is the registry's index when the watch began; 0 if it did not say.
func (w *Watcher) Index() uint64 { return w.start }

// NextIndex is the index a follow-up watch should wait from.
func (w *Watcher) NextIndex() uint64 { return w.next }

// Next returns the next event, or io.EOF when the answer has ended.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	if w.ended {
		return Event{}, io.EOF
	}
	var ev Event
	if err := w.dec.Decode(&ev); err != nil {
		w.ended = true
		if errors.Is(err, io.EOF) {
			return ev, io.EOF
		}
		if ctx.Err() != nil {
			return ev, ctx.Err()
		}
		return ev, fmt.Errorf("%s: read event: %w", w.op, err)
	}
	if ev.Node.ModifiedIndex >= w.next {
		w.next = ev.Node.ModifiedIndex + 1
	}
	if ev.Node.ModifiedIndex <= w.start {
		w.ended = true // served from the history: nothing follows
	}
	return ev, nil
}

// Close ends the watch request.
func (w *Watcher) Close() { w.body.Close() }

// Watch is OpenWatch plus a loop calling fn for each event in order, until
// fn returns false, the answer ends or ctx ends. It returns the index to
// wait from next.
func (c *Client) Watch(ctx context.Context, waitIndex uint64, fn func(Event) bool) (uint64, error) {
	w, err := c.OpenWatch(ctx, waitIndex)
	if err != nil {
		return waitIndex, err
	}
	defer w.Close()
	err = w.Each(ctx, fn)
	return w.NextIndex(), err
}

// Each calls fn for every event of the answer until fn returns false or the
// answer ends (nil) or fails.
func (w *Watcher) Each(ctx context.Context, fn func(Event) bool) error {
	for {
		ev, err := w.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fn(ev) {
			return nil
		}
	}
}

type response struct {
	Action string `json:"action"`
	Node   Node   `json:"node"`
}

type errorBody struct {
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
	Cause     string `json:"cause"`
}

// do sends one bounded request and decodes a success into out. It returns
// the X-Etcd-Index of the answer.
func (c *Client) do(ctx context.Context, method, key string, q, form url.Values, out any) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	target := c.keyURL(key, q)
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return 0, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	op := method + " " + req.URL.Path
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return 0, readError(op, resp)
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return idx, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return 0, fmt.Errorf("%s: registry answered %d with a body that is not etcd v2 JSON: %w", op, resp.StatusCode, err)
	}
	return idx, nil
}

func readError(op string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &Error{Op: op, Status: resp.StatusCode}
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.ErrorCode != 0 {
		e.Code, e.Message, e.Cause = eb.ErrorCode, eb.Message, eb.Cause
	} else {
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "..."
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return e
}
