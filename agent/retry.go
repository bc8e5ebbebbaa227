package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Clock is the time source of every wait, so that tests can run waits
// without sleeping.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// After is time.After.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// backoff is a schedule of pauses between tries: first, doubling up to
// most, each with up to a quarter added at random so that hosts that
// failed together do not retry together.
type backoff struct {
	first, most time.Duration
}

// The schedules the agent uses.
var (
	// registryBackoff paces retries of a registry or cluster that is
	// unavailable (restarting, no leader, unreachable).
	registryBackoff = backoff{first: 250 * time.Millisecond, most: 16 * time.Second}
	// pollBackoff paces polls for a condition that other hosts make true
	// within milliseconds when they start together, and that a host
	// waiting for late ones asks less and less often.
	pollBackoff = backoff{first: 50 * time.Millisecond, most: 2 * time.Second}
	// joinBackoff paces tries to add this host to a running cluster,
	// which etcd refuses for seconds after it formed.
	joinBackoff = backoff{first: 250 * time.Millisecond, most: 2 * time.Second}
)

// pause is the pause before try number attempt (1, 2, ...).
func (b backoff) pause(attempt int) time.Duration {
	d := b.first
	for i := 1; i < attempt && d < b.most; i++ {
		d *= 2
	}
	d = min(d, b.most)
	return d + rand.N(d/4+1)
}

// waitReport is how often a wait says what it waits for.
const waitReport = 10 * time.Second

// wait is one bounded wait of the agent: for a registry to answer, for the
// token to fill, for SRV records, for a cluster to let this host join.
type wait struct {
	what  string // what is waited for, as the log and the timeout error say it
	sched backoff
	clock Clock
	log   *slog.Logger
}

// run calls try until it returns nil, an error that is not worth another
// try, or ctx ends. An error wrapping ErrUnavailable is a fault that may
// heal and is logged as a warning; one wrapping errNotYet is a condition
// that does not hold yet and is logged at once and then every waitReport.
// When ctx's deadline passes, the error wraps ErrTimeout and says what was
// waited for and what the last try saw.
func (w wait) run(ctx context.Context, try func(context.Context) error) error {
	var last error
	var reported time.Time
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil {
			return nil
		}
		again := errors.Is(err, errNotYet) || errors.Is(err, ErrUnavailable)
		cut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
		switch {
		case !again && !cut:
			return err // final, whatever the clock says
		case ctx.Err() != nil:
			return w.ended(ctx, err)
		case !again:
			return err
		case errors.Is(err, errNotYet):
			if now := w.clock.Now(); reported.IsZero() || now.Sub(reported) >= waitReport {
				w.log.Info("waiting for "+w.what, "now", err.Error())
				reported = now
			}
		default:
			w.log.Warn("retrying: "+w.what, "err", err, "attempt", attempt)
		}
		last = err
		select {
		case <-ctx.Done():
			return w.ended(ctx, last)
		case <-w.clock.After(w.sched.pause(attempt)):
		}
	}
}

// ended is the error of a wait whose context ended.
func (w wait) ended(ctx context.Context, last error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w waiting for %s (last: %v)", ErrTimeout, w.what, last)
	}
	return fmt.Errorf("interrupted waiting for %s: %w", w.what, ctx.Err())
}

// retry calls f until it succeeds, fails with an error that cannot heal, or
// ctx ends, as one wait.
func retry[T any](ctx context.Context, w wait, f func(context.Context) (T, error)) (T, error) {
	var v T
	err := w.run(ctx, func(ctx context.Context) error {
		var err error
		v, err = f(ctx)
		return err
	})
	return v, err
}

// sleep pauses for d on clock, or until ctx ends.
func sleep(ctx context.Context, clock Clock, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-clock.After(d):
		return nil
	}
}
