// Package etcdv3 is the agent's client of etcd's v3 API, on
// go.etcd.io/etcd/client/v3: Cluster, the running cluster's member list,
// member add (learner or voter), promote and remove, and the join lock (a
// concurrency session whose lease the client keeps alive, and a mutex).
//
// Errors are mapped to the agent's by type: etcd's own errors (rpctypes)
// with errors.Is, gRPC status codes, and a TLS probe's crypto/tls errors,
// never by message text. gRPC reports a failed TLS handshake only as text,
// so Dial first shakes hands with one endpoint itself (crypto/tls, typed
// errors): a wrong CA, an expired or refused certificate or a plain-HTTP
// port fail at once, not after the whole timeout.
package etcdv3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

// RequestTimeout bounds every request that is not a wait.
const RequestTimeout = 5 * time.Second

// dialTimeout bounds the TLS probe and the authentication at Dial.
const dialTimeout = 5 * time.Second

// Dial opens a client/v3 client to endpoints (client URLs) with access;
// ctx bounds the TLS probe, DialTimeout the authentication, and the
// client lives until it is closed.
func Dial(ctx context.Context, endpoints []string, access agent.Access) (*clientv3.Client, error) {
	if err := probeTLS(ctx, endpoints, access.TLS); err != nil {
		return nil, err
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         access.TLS,
		Username:    access.User,
		Password:    access.Password,
		DialTimeout: dialTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, Classify(fmt.Sprintf("connect to %v", endpoints), err)
	}
	return c, nil
}

// lazy is a client/v3 client made on first use, within the first
// request's context, so that a registry that cannot be reached yet is one
// more fault the caller's wait retries. A failed dial is not kept.
type lazy struct {
	endpoints []string
	access    agent.Access
	mu        sync.Mutex
	c         *clientv3.Client
}

func (l *lazy) client(ctx context.Context) (*clientv3.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		return l.c, nil
	}
	c, err := Dial(ctx, l.endpoints, l.access)
	if err != nil {
		return nil, err
	}
	l.c = c
	return c, nil
}

func (l *lazy) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		return nil
	}
	err := l.c.Close()
	l.c = nil
	return err
}

// probeTLS shakes hands with the first https endpoint that answers and
// reads its first answer, so that a certificate the server refuses (which
// TLS 1.3 reports only after the handshake) shows too. Endpoints that do
// not answer are left to the client's retries.
func probeTLS(ctx context.Context, endpoints []string, conf *tls.Config) error {
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != "https" {
			continue
		}
		c := conf.Clone()
		if c == nil {
			c = &tls.Config{}
		}
		if c.ServerName == "" {
			c.ServerName = u.Hostname()
		}
		c.NextProtos = []string{"http/1.1"}
		err = handshake(ctx, u.Host, c)
		if nt := agent.NotTLS(ctx, "the etcd at", ep, err); nt != nil {
			return nt
		}
		if err == nil || !agent.TLSFailure(err) {
			return nil
		}
		return fmt.Errorf("%w: TLS with %s: %w", agent.ErrAccess, ep, err)
	}
	return nil
}

func handshake(ctx context.Context, addr string, conf *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	d := tls.Dialer{Config: conf}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("GET /health HTTP/1.0\r\n\r\n")); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}

// errNotForLearner: a learner was asked what only voters answer;
// rpctypes has no client-side value for it.
var errNotForLearner = rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner)

// Classify maps a client/v3 error to the agent's: refused credentials to
// agent.ErrAccess, faults that pass (no leader, unhealthy cluster, a
// request that timed out, an endpoint that cannot be reached) to
// agent.ErrUnavailable, and the member errors the core acts on to its
// sentinels. op says what was asked.
func Classify(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, m := range []struct {
		etcd, agent error
	}{
		{rpctypes.ErrPeerURLExist, agent.ErrPeerURLExists},
		{rpctypes.ErrTooManyLearners, agent.ErrTooManyLearners},
		{rpctypes.ErrMemberLearnerNotReady, agent.ErrLearnerNotReady},
		{rpctypes.ErrMemberNotLearner, agent.ErrNotLearner},
		{rpctypes.ErrMemberNotFound, agent.ErrMemberNotFound},
		{rpctypes.ErrAuthFailed, agent.ErrAccess},
		{rpctypes.ErrPermissionDenied, agent.ErrAccess},
		{rpctypes.ErrUserEmpty, agent.ErrAccess},
		{rpctypes.ErrUserNotFound, agent.ErrAccess},
		{rpctypes.ErrInvalidAuthToken, agent.ErrAccess},
		{rpctypes.ErrRoleNotGranted, agent.ErrAccess},
		{rpctypes.ErrPermissionNotGranted, agent.ErrAccess},
		{rpctypes.ErrUnhealthy, agent.ErrUnavailable},
		{rpctypes.ErrMemberNotEnoughStarted, agent.ErrUnavailable},
		{rpctypes.ErrNoLeader, agent.ErrUnavailable},
		{rpctypes.ErrNotLeader, agent.ErrUnavailable},
		{rpctypes.ErrLeaderChanged, agent.ErrUnavailable},
		{rpctypes.ErrTimeout, agent.ErrUnavailable},
		{rpctypes.ErrTimeoutDueToLeaderFail, agent.ErrUnavailable},
		{rpctypes.ErrTimeoutDueToConnectionLost, agent.ErrUnavailable},
		{rpctypes.ErrTimeoutWaitAppliedIndex, agent.ErrUnavailable},
		{errNotForLearner, agent.ErrUnavailable},
	} {
		if errors.Is(err, m.etcd) {
			return fmt.Errorf("%s: %w: %w", op, m.agent, err)
		}
	}
	if agent.TLSFailure(err) {
		return fmt.Errorf("%s: %w: %w", op, agent.ErrAccess, err)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return fmt.Errorf("%s: %w: %w", op, agent.ErrUnavailable, err)
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%s: %w: %w", op, agent.ErrAccess, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", op, agent.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
