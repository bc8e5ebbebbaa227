package etcdv3

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

// Errors are mapped by type: etcd's own (as client/v3 returns them),
// gRPC codes, and what is left over.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{rpctypes.ErrPeerURLExist, agent.ErrPeerURLExists},
		{rpctypes.ErrTooManyLearners, agent.ErrTooManyLearners},
		{rpctypes.ErrMemberLearnerNotReady, agent.ErrLearnerNotReady},
		{rpctypes.ErrMemberNotLearner, agent.ErrNotLearner},
		{rpctypes.ErrMemberNotFound, agent.ErrMemberNotFound},
		{rpctypes.ErrAuthFailed, agent.ErrAccess},
		{rpctypes.ErrPermissionDenied, agent.ErrAccess},
		{rpctypes.ErrUserEmpty, agent.ErrAccess},
		{rpctypes.ErrUnhealthy, agent.ErrUnavailable},
		{rpctypes.ErrMemberNotEnoughStarted, agent.ErrUnavailable},
		{rpctypes.ErrNoLeader, agent.ErrUnavailable},
		{rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner), agent.ErrUnavailable},
		{status.Error(codes.Unavailable, "connection refused"), agent.ErrUnavailable},
		{status.Error(codes.PermissionDenied, "no"), agent.ErrAccess},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), agent.ErrUnavailable},
	} {
		if got := Classify("op", tc.err); !errors.Is(got, tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("Classify(%v) = %v; want %v, wrapping the original", tc.err, got, tc.want)
		}
	}
	if got := Classify("op", errors.New("something else")); errors.Is(got, agent.ErrUnavailable) || errors.Is(got, agent.ErrAccess) {
		t.Errorf("an unknown error is %v; want it final and not a refusal", got)
	}
}
