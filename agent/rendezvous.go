package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// rendezvous registers this host under a discovery token and waits until
// the token holds its size of members, as etcd's own discovery client
// does, on any Registry.
//
// What it writes, it takes back while it can: a host that fails before the
// token filled (a timeout, an interruption, a name another host holds, an
// entry that spoils the token) removes its own key, so the token is as if
// it had never come. Once the token has filled with this host among its
// members, the other hosts count it: its key stays, and a rerun resumes
// on it.
type rendezvous struct {
	reg   Registry
	self  Member
	key   string // the member ID of self under the token: its registry key
	value string // what self registers: its name=url pairs
	clock Clock
	log   *slog.Logger
}

// outcome is what a rendezvous decided.
type outcome struct {
	size    int
	members []Member // the cluster, in registration order
	full    bool     // the token filled without this host (it holds no key)
}

// removeTimeout bounds the removal of this host's key on the way out.
const removeTimeout = 5 * time.Second

func newRendezvous(reg Registry, self Member, clock Clock, log *slog.Logger) *rendezvous {
	key := FormatID(MemberID(self.PeerURLs, reg.Token()))
	return &rendezvous{reg: reg, self: self, key: key, value: self.RegistryValue(), clock: clock, log: log.With("key", key)}
}

// registryWait is a wait for the registry to answer.
func (r *rendezvous) registryWait(what string) wait {
	return wait{what: "the registry to " + what, sched: registryBackoff, clock: r.clock, log: r.log}
}

// run reads the size, lists the token, registers (create-only) unless the
// token is full already or holds this host's key from an earlier run, and
// watches the token from the listing on until it holds size members.
func (r *rendezvous) run(ctx context.Context) (outcome, error) {
	known, pos, now, err := r.read(ctx)
	if err != nil {
		return outcome{}, err
	}
	mine, registered := known[r.key]
	if !registered && now.full {
		// A full token is never written to.
		return now, nil
	}
	if registered {
		if mine, err = r.resume(mine); err != nil {
			return outcome{}, err
		}
	} else {
		var listing map[string]Entry
		var at uint64
		if mine, listing, at, err = r.register(ctx); err != nil {
			return outcome{}, err
		}
		switch {
		case listing != nil:
			known, pos = listing, at // listed with the registration
		case mine.Created == pos+1:
			pos = mine.Created // nothing else happened in between
		}
		known[r.key] = mine
	}

	out, err := r.waitFull(ctx, now.size, known, pos, mine.Created)
	if err != nil {
		r.remove(ctx, known[r.key], err)
		return outcome{}, err
	}
	if out.full {
		r.remove(ctx, known[r.key], errors.New("the token filled up before this host registered"))
	}
	return out, nil
}

// peek reads the token without writing to it: for an etcd that runs v2
// discovery itself, which registers on its own (and refuses a key the
// agent wrote for it as a duplicate ID). It reports a token that is full
// without this host, or unusable, as run would.
func (r *rendezvous) peek(ctx context.Context) (outcome, error) {
	known, _, now, err := r.read(ctx)
	if err != nil {
		return outcome{}, err
	}
	if mine, registered := known[r.key]; registered {
		if _, err := r.resume(mine); err != nil {
			return outcome{}, err
		}
	}
	return now, nil
}

// read reads the token's size and entries, and what they make of the
// cluster now: known holds the entries by key, at registry position pos.
func (r *rendezvous) read(ctx context.Context) (known map[string]Entry, pos uint64, now outcome, err error) {
	size, err := retry(ctx, r.registryWait("give the token's size"), r.reg.Size)
	if err != nil {
		return nil, 0, outcome{}, tokenError(r.reg, err)
	}
	if known, pos, err = r.list(ctx); err != nil {
		return nil, 0, outcome{}, err
	}
	r.log.Info("discovery token", "token", r.reg.Token(), "size", size, "registered", len(known))
	members, _, err := tokenMembers(entries(known), size, r.reg.Token())
	if err != nil {
		return nil, 0, outcome{}, err
	}
	return known, pos, r.outcome(size, members), nil
}

// outcome is what members make of the token: the cluster, if it holds
// size members, and whether it filled without this host.
func (r *rendezvous) outcome(size int, members []tokenEntry) outcome {
	full := len(members) >= size && !slices.ContainsFunc(members, func(te tokenEntry) bool { return te.Key == r.key })
	return outcome{size: size, members: membersOf(members), full: full}
}

// resume checks that the key this host would register, found in the
// token, is its own from an earlier run.
func (r *rendezvous) resume(e Entry) (Entry, error) {
	if e.Value != r.value {
		return e, fmt.Errorf("%w: registry key %s (the member ID of peer URLs %s on this token) holds %s, not %s: another host claims these peer URLs, or this host changed its name",
			ErrConflict, r.key, strings.Join(r.self.PeerURLs, ","), Quote(e.Value), Quote(r.value))
	}
	r.log.Info("already registered under this token by an earlier run; resuming", "created", e.Created)
	return e, nil
}

// listingRegistrar is a Registry that can list the token in the same step
// as a registration (v3: one transaction), at the registration's position.
type listingRegistrar interface {
	RegisterListing(ctx context.Context, key, value string) (Entry, []Entry, uint64, error)
}

// register writes this host's key, create-only. A key that already holds
// this host's value is its own from an earlier try. Where the registry
// lists the token in the same step, it returns that listing and its
// position too (else nil).
func (r *rendezvous) register(ctx context.Context) (Entry, map[string]Entry, uint64, error) {
	type registered struct {
		mine    Entry
		listing []Entry
		pos     uint64
	}
	reg, err := retry(ctx, r.registryWait("take this host's registration"), func(ctx context.Context) (registered, error) {
		if lr, ok := r.reg.(listingRegistrar); ok {
			e, es, pos, err := lr.RegisterListing(ctx, r.key, r.value)
			return registered{e, es, pos}, err
		}
		e, err := r.reg.Register(ctx, r.key, r.value)
		return registered{mine: e}, err
	})
	if errors.Is(err, ErrKeyExists) {
		// Written in the instant since the listing: by an earlier try
		// whose answer was lost, or by another host.
		e, err := r.resume(reg.mine)
		return e, nil, 0, err
	}
	if err != nil {
		return reg.mine, nil, 0, tokenError(r.reg, err)
	}
	r.log.Info("registered", "value", r.value, "created", reg.mine.Created)
	if reg.pos == 0 {
		return reg.mine, nil, 0, nil
	}
	return reg.mine, byKey(reg.listing), reg.pos, nil
}

// list reads the token's entries.
func (r *rendezvous) list(ctx context.Context) (map[string]Entry, uint64, error) {
	type listing struct {
		entries []Entry
		pos     uint64
	}
	l, err := retry(ctx, r.registryWait("list the token"), func(ctx context.Context) (listing, error) {
		es, pos, err := r.reg.List(ctx)
		return listing{es, pos}, err
	})
	if err != nil {
		return nil, 0, tokenError(r.reg, err)
	}
	return byKey(l.entries), l.pos, nil
}

// waitFull applies the token's changes after position pos to known until
// the token holds size members, and decides the cluster. It decides only
// once it has seen every change up to this host's own registration (at
// position mine): a host that registered between the listing and this one
// comes before it.
func (r *rendezvous) waitFull(ctx context.Context, size int, known map[string]Entry, pos, mine uint64) (outcome, error) {
	var have atomic.Int64
	say := func() {
		r.log.Info("waiting for members to register", "token", r.reg.Token(), "have", have.Load(), "want", size)
	}
	stop := progress(ctx, r.clock, say)
	defer stop()
	said := false

	w := r.reg.Watch(ctx, pos)
	defer func() { w.Close() }()
	for attempt := 0; ; {
		members, claims, err := tokenMembers(entries(known), size, r.reg.Token())
		if err != nil {
			return outcome{}, err
		}
		if err := r.checkClaims(claims); err != nil {
			return outcome{}, err
		}
		have.Store(int64(len(members)))
		if len(members) >= size && pos >= mine {
			return r.outcome(size, members), nil
		}
		if !said {
			say()
			said = true
		}

		ch, err := w.Next(ctx)
		switch {
		case err == nil:
			attempt = 0
			pos = max(pos, ch.Modified)
			r.apply(known, ch)
			continue
		case ctx.Err() != nil:
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return outcome{}, fmt.Errorf("%w waiting for the token to fill: %d of %d members registered", ErrTimeout, have.Load(), size)
			}
			return outcome{}, fmt.Errorf("interrupted waiting for the token to fill: %w", ctx.Err())
		case errors.Is(err, ErrHistoryLost):
			r.log.Warn("the watch fell behind the registry's history; listing the token again", "err", err)
			if known, pos, err = r.relist(ctx, known); err != nil {
				return outcome{}, err
			}
		case errors.Is(err, ErrUnavailable):
			attempt++
			d := registryBackoff.pause(attempt)
			r.log.Warn("watching the token failed; retrying", "err", err, "retry_in", d.String())
			if err := sleep(ctx, r.clock, d); err != nil {
				continue // the context's end is reported above
			}
		default:
			return outcome{}, tokenError(r.reg, err)
		}
		w.Close()
		w = r.reg.Watch(ctx, pos)
	}
}

// relist replaces known by a new listing, keeping this host's entry if a
// lagging replica does not list it yet.
func (r *rendezvous) relist(ctx context.Context, old map[string]Entry) (map[string]Entry, uint64, error) {
	known, pos, err := r.list(ctx)
	if err != nil {
		return nil, 0, err
	}
	if mine, ok := old[r.key]; ok {
		if _, listed := known[r.key]; !listed {
			known[r.key] = mine
		}
	}
	return known, pos, nil
}

// apply records one change of the token.
func (r *rendezvous) apply(known map[string]Entry, ch Change) {
	prev, ok := known[ch.Key]
	switch {
	case ch.Deleted:
		if ok {
			delete(known, ch.Key)
			r.log.Info("registration removed", "removed", Clip(ch.Key))
		}
	case ok:
		ch.Created = prev.Created // a rewrite keeps its place
		known[ch.Key] = ch.Entry
	default:
		known[ch.Key] = ch.Entry
		if ch.Key != r.key {
			r.log.Info("registration", "member", Clip(ch.Key), "value", Clip(ch.Value))
		}
	}
}

// checkClaims fails when another host registered this host's name or peer
// URL before it; when this host is the earlier one, the other leaves.
func (r *rendezvous) checkClaims(claims []claim) error {
	for _, c := range claims {
		if c.later.Key == r.key {
			return fmt.Errorf("%w: %s is already registered by another host (key %s, %s); choose another name, or delete that key if it is this host's stale registration",
				ErrConflict, c.what, c.earlier.Key, Quote(c.earlier.Value))
		}
	}
	return nil
}

// remove takes this host's key back, unless someone rewrote it since.
func (r *rendezvous) remove(ctx context.Context, mine Entry, why error) {
	if mine.Key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	if err := r.reg.Remove(ctx, mine); err != nil {
		r.log.Warn("could not remove this host's registration", "why", why.Error(), "err", err)
		return
	}
	r.log.Info("removed this host's registration, leaving the token as it was", "why", why.Error())
}

// tokenError adds to an error of reg what it means for the token.
func tokenError(reg Registry, err error) error {
	switch {
	case errors.Is(err, ErrNoToken):
		return fmt.Errorf("%w: %s has no token or no size; create tokens with 'etcd-discovery-agent token new': %w", ErrRegistryData, reg.Token(), err)
	case errors.Is(err, ErrBadSize):
		return fmt.Errorf("%w: %w", ErrRegistryData, err)
	}
	return err
}

func byKey(es []Entry) map[string]Entry {
	known := make(map[string]Entry, len(es))
	for _, e := range es {
		known[e.Key] = e
	}
	return known
}

func entries(known map[string]Entry) []Entry {
	es := make([]Entry, 0, len(known))
	for _, e := range known {
		es = append(es, e)
	}
	return es
}

// progress calls say every waitReport until stop.
func progress(ctx context.Context, clock Clock, say func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-clock.After(waitReport):
				say()
			}
		}
	}()
	return func() { cancel(); <-done }
}
