package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock runs waits without sleeping: After moves the clock forward by
// d and fires at once.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func TestBackoff(t *testing.T) {
	b := backoff{first: 100 * time.Millisecond, most: time.Second}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		got := b.pause(attempt)
		if got < want || got > want+want/4 {
			t.Errorf("pause(%d) = %s; want %s plus at most a quarter", attempt, got, want)
		}
	}
}

// A wait retries what may heal, says what it waits for at most every
// waitReport, returns what is final at once, and names what it waited for
// when its deadline passes.
func TestWait(t *testing.T) {
	var logs bytes.Buffer
	clock := &fakeClock{now: time.Unix(0, 0)}
	w := wait{what: "the thing", sched: backoff{first: time.Second, most: time.Second}, clock: clock, log: slog.New(slog.NewTextHandler(&logs, nil))}

	tries := 0
	err := w.run(context.Background(), func(context.Context) error {
		tries++
		switch {
		case tries < 30:
			return fmt.Errorf("%w: %d of 3", errNotYet, tries)
		case tries < 33:
			return fmt.Errorf("%w: connection refused", ErrUnavailable)
		}
		return nil
	})
	if err != nil || tries != 33 {
		t.Fatalf("run = %v after %d tries; want success after 33", err, tries)
	}
	// 29 "not yet" tries 1 to 1.25 s apart (28 to 35 s): reported at
	// once and then every 10 s, not 29 times.
	if n := strings.Count(logs.String(), `msg="waiting for the thing"`); n < 3 || n > 4 {
		t.Errorf("%d progress lines; want 3 or 4:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 3 {
		t.Errorf("%d warnings; want one per failure that may heal:\n%s", n, logs.String())
	}

	final := errors.New("refused for good")
	if err := w.run(context.Background(), func(context.Context) error { return final }); !errors.Is(err, final) {
		t.Errorf("a final error: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = w.run(ctx, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "the thing") {
		t.Errorf("deadline: %v; want ErrTimeout naming what was waited for", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := w.run(ctx, func(ctx context.Context) error { return ctx.Err() }); errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v; want an interruption, not a timeout", err)
	}
}
