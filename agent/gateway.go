package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// joinLock is the etcd lock under which agents add members, so that one
// host is added, and started, before the next is added: etcd joins a
// member only if the member list it is given has as many members as the
// cluster (an add after this host's, before its etcd started, would make
// its list one short).
const joinLock = "etcd-discovery-agent/join"

// joinLockTTL bounds how long a crashed agent holds the lock.
const joinLockTTL = 30

// gatewayTimeout bounds one request to etcd's gateway, except the wait for
// the lock, which ctx bounds.
const gatewayTimeout = 5 * time.Second

// gateway is one started member's client URL, spoken to through etcd's gRPC
// JSON gateway (POST /v3/..., in etcd 3.4 to 3.7), which needs no client
// library.
type gateway struct {
	client   *http.Client // without a timeout of its own
	endpoint string
}

// gatewayError is a refusal the gateway answered with.
type gatewayError struct {
	endpoint, path string
	status         int
	code           int // the gRPC code
	message        string
}

func (e *gatewayError) Error() string {
	s := fmt.Sprintf("%s%s: %s (HTTP %d, code %d)", e.endpoint, e.path, Clip(e.message), e.status, e.code)
	if e.status == http.StatusNotFound {
		s += "; the agent adds members through etcd's gRPC JSON gateway: is it off (--enable-grpc-gateway=false)?"
	}
	return s
}

// post sends in as JSON to path and decodes the answer into out; wait
// lifts the per-request timeout (for the lock).
func (g gateway) post(ctx context.Context, path string, in, out any, wait bool) error {
	if !wait {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, gatewayTimeout)
		defer cancel()
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(g.endpoint, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
			Code    int    `json:"code"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return &gatewayError{endpoint: g.endpoint, path: path, status: resp.StatusCode, code: e.Code, message: e.Message}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s%s: %w", g.endpoint, path, err)
	}
	return nil
}

// gwMember is a member as the gateway writes it (64-bit IDs as strings).
type gwMember struct {
	ID         string   `json:"ID"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
}

func (g gateway) parseMembers(path string, gms []gwMember) ([]peerMember, error) {
	var ms []peerMember
	for _, gm := range gms {
		id, err := strconv.ParseUint(gm.ID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s%s: member ID %s: %w", g.endpoint, path, Quote(gm.ID), err)
		}
		m := peerMember{ID: id, Name: gm.Name, PeerURLs: gm.PeerURLs, ClientURLs: gm.ClientURLs}
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("%w from %s%s: %w", errInvalidMembers, g.endpoint, path, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// members is the cluster's member list.
func (g gateway) members(ctx context.Context) ([]peerMember, error) {
	const path = "/v3/cluster/member/list"
	var r struct {
		Members []gwMember `json:"members"`
	}
	if err := g.post(ctx, path, struct{}{}, &r, false); err != nil {
		return nil, err
	}
	return g.parseMembers(path, r.Members)
}

var errPeerURLExists = errors.New("peer URL already exists")

// add adds peerURL as a voting member and returns its ID and the member
// list with it.
func (g gateway) add(ctx context.Context, peerURL string) (uint64, []peerMember, error) {
	const path = "/v3/cluster/member/add"
	var r struct {
		Member  gwMember   `json:"member"`
		Members []gwMember `json:"members"`
	}
	err := g.post(ctx, path, map[string][]string{"peerURLs": {peerURL}}, &r, false)
	var ge *gatewayError
	if errors.As(err, &ge) && strings.Contains(ge.message, "Peer URLs already exists") {
		return 0, nil, fmt.Errorf("%w: %w", errPeerURLExists, err)
	}
	if err != nil {
		return 0, nil, err
	}
	id, err := strconv.ParseUint(r.Member.ID, 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("%s%s: new member ID %s: %w", g.endpoint, path, Quote(r.Member.ID), err)
	}
	ms, err := g.parseMembers(path, r.Members)
	if err != nil {
		return 0, nil, err
	}
	if !slices.ContainsFunc(ms, func(m peerMember) bool { return m.ID == id }) {
		return 0, nil, fmt.Errorf("%s%s: the new member %x is not in the member list", g.endpoint, path, id)
	}
	return id, ms, nil
}

// lock takes the etcd lock name, held by a lease of ttl seconds (so that it
// ends when a crashed holder's lease does), waiting while another holds it;
// release revokes the lease, which gives the lock up.
func (g gateway) lock(ctx context.Context, name string, ttl int) (release func(), err error) {
	var lease struct {
		ID string `json:"ID"`
	}
	if err := g.post(ctx, "/v3/lease/grant", map[string]int{"TTL": ttl}, &lease, false); err != nil {
		return nil, err
	}
	release = func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), gatewayTimeout)
		defer cancel()
		var out struct{}
		_ = g.post(ctx, "/v3/lease/revoke", map[string]string{"ID": lease.ID}, &out, false)
	}
	in := struct {
		Name  []byte `json:"name"` // JSON base64, as the gateway takes bytes
		Lease string `json:"lease"`
	}{[]byte(name), lease.ID}
	var out struct {
		Key []byte `json:"key"`
	}
	if err := g.post(ctx, "/v3/lock/lock", in, &out, true); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// unstartedError: another member was added and has not started yet; adding
// this host now would give that member's etcd a member list one short.
type unstartedError struct{ m peerMember }

func (e *unstartedError) Error() string {
	return fmt.Sprintf("member %x (%s) was added but has not started yet; if its host is gone, remove it (etcdctl member remove %x)",
		e.m.ID, strings.Join(e.m.PeerURLs, ","), e.m.ID)
}

// noneUnstarted checks that no member but peerURL's is added and not
// started.
func noneUnstarted(ctx context.Context, g gateway, peerURL string) error {
	ms, err := g.members(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if !m.started() && !slices.Contains(m.PeerURLs, peerURL) {
			return &unstartedError{m}
		}
	}
	return nil
}

// addOne adds peerURL through g under the join lock, when no other added
// member is waiting to start.
func addOne(ctx context.Context, g gateway, peerURL string) (uint64, []peerMember, error) {
	if err := noneUnstarted(ctx, g, peerURL); err != nil {
		return 0, nil, err
	}
	release, err := g.lock(ctx, joinLock, joinLockTTL)
	if err != nil {
		return 0, nil, err
	}
	defer release()
	if err := noneUnstarted(ctx, g, peerURL); err != nil {
		return 0, nil, err
	}
	return g.add(ctx, peerURL)
}

// retryable: a network error, another added member still starting, or a
// refusal that passes with time (etcd: "unhealthy cluster" until every
// member has been connected for 5 s, "re-configuration failed due to not
// enough started members", no leader yet).
func retryable(err error) bool {
	var ue *unstartedError
	if errors.As(err, &ue) {
		return true
	}
	var ge *gatewayError
	if !errors.As(err, &ge) {
		return !errors.Is(err, errInvalidMembers)
	}
	for _, s := range []string{"not enough started members", "unhealthy cluster", "no leader", "leader changed", "timed out"} {
		if strings.Contains(ge.message, s) {
			return true
		}
	}
	return ge.status >= 500 && ge.code == 14 // Unavailable
}

// addMember adds peerURL to the running cluster whose member list is ms,
// through the started members' client URLs in turn, one host at a time
// (joinLock), retrying with backoff until ctx ends while etcd or another
// joining host makes it wait.
func addMember(ctx context.Context, client *http.Client, ms []peerMember, peerURL string, log *slog.Logger) (uint64, []peerMember, error) {
	var endpoints []string
	for _, m := range ms {
		endpoints = append(endpoints, m.ClientURLs...)
	}
	if len(endpoints) == 0 {
		return 0, nil, errors.New("member add: no member of the running cluster has started (no client URLs)")
	}
	// The requests set their own deadlines; the wait for the lock has none
	// but ctx's.
	untimed := &http.Client{Transport: client.Transport}
	var (
		last   error
		report time.Time
	)
	for pause := 250 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		for _, ep := range endpoints {
			id, list, err := addOne(ctx, gateway{untimed, ep}, peerURL)
			if err == nil || !retryable(err) {
				return id, list, err
			}
			last = err
			var ue *unstartedError
			if errors.As(err, &ue) {
				break // every endpoint would say so
			}
		}
		if time.Since(report) >= 10*time.Second {
			log.Info("waiting to add this host to the running cluster", "peer_url", peerURL, "last", last.Error())
			report = time.Now()
		}
		if sleep(ctx, pause) != nil {
			return 0, nil, fmt.Errorf("%w adding this host to the running cluster: %v", ErrTimeout, last)
		}
	}
}
