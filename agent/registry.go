package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Registry is the store of one discovery token: a directory of etcd's v2
// keys API, or a prefix of its v3 key space. An implementation reports the
// token's entries exactly as etcd's own discovery client sees them (the
// same keys, in listings and in watches alike); the core decides which of
// them make the cluster (see tokenMembers), the same way on every path.
type Registry interface {
	// Token is the string etcd hashes into member IDs: the discovery URL
	// for a v2 token, the token itself for a v3 one.
	Token() string
	// Size reads the token's size, parsed as etcd's own client parses it.
	// A missing token or size is ErrNoToken, a bad one ErrBadSize.
	Size(ctx context.Context) (int, error)
	// List returns the token's entries and the registry position (v2
	// index, v3 revision) the listing reflects.
	List(ctx context.Context) ([]Entry, uint64, error)
	// Register writes key=value only if key does not exist. A key that
	// exists is ErrKeyExists, returned with the entry it holds.
	Register(ctx context.Context, key, value string) (Entry, error)
	// Watch reports the changes after position after, in order.
	Watch(ctx context.Context, after uint64) Watcher
	// Remove deletes e's key if it has not changed since e was read
	// (compare-and-delete), so a key someone else rewrote is left alone.
	Remove(ctx context.Context, e Entry) error
}

// Watcher reports a token's changes one at a time.
type Watcher interface {
	// Next waits for the next change. ErrHistoryLost means the registry
	// no longer has the changes after the position watched from: list
	// again.
	Next(ctx context.Context) (Change, error)
	Close()
}

// Entry is one entry of a token as etcd's own client sees it.
type Entry struct {
	Key      string // the entry's name under the token: a member ID for a member
	Value    string
	Created  uint64 // registry position of its creation: the registration order
	Modified uint64 // registry position of its last change
	// Nested marks an entry that is not a plain key directly under the
	// token (a v2 directory, or a key below one), which etcd's own client
	// counts all the same.
	Nested bool
}

// Change is one change of a token.
type Change struct {
	Entry
	Deleted bool
}

// Errors a Registry reports, beside ErrUnavailable for faults that heal
// and ErrAccess for refused credentials.
var (
	// ErrNoToken: the token, or its size, does not exist.
	ErrNoToken = errors.New("no such discovery token")
	// ErrBadSize: the size is not what etcd's own client accepts.
	ErrBadSize = errors.New("bad size key")
	// ErrKeyExists: a create-only write found the key taken.
	ErrKeyExists = errors.New("key exists")
	// ErrHistoryLost: a watch asked for changes the registry no longer
	// keeps (v2: error 401, index cleared; v3: compacted).
	ErrHistoryLost = errors.New("registry history lost")
	// ErrChanged: a compare-and-delete found the key changed.
	ErrChanged = errors.New("key changed")
)

// tokenEntry is a validated member entry of a token.
type tokenEntry struct {
	Entry
	member Member
}

// claim says that an entry's name or peer URL was registered before it by
// another entry: the later one does not count, and its host leaves.
type claim struct {
	later, earlier tokenEntry
	what           string // "name \"x\"" or "peer URL ..."
}

// checkEntry validates one entry as a member of the token whose IDs are
// salted with token: the key must be the member ID of the value's peer
// URLs, written as etcd writes IDs, and the value one member with a valid
// name and canonical URLs.
func checkEntry(e Entry, token string) (tokenEntry, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: registry key %s holds %s: %s; delete that key, or use a new token",
			ErrRegistryData, Quote(e.Key), Quote(e.Value), fmt.Sprintf(format, args...))
	}
	if e.Nested {
		return tokenEntry{}, bad("it is a directory, not a member's key")
	}
	ms, err := ParseCluster(e.Value)
	if err != nil {
		return tokenEntry{}, bad("%v", err)
	}
	if len(ms) != 1 {
		return tokenEntry{}, bad("%d members, want one", len(ms))
	}
	if want := FormatID(MemberID(ms[0].PeerURLs, token)); e.Key != want {
		return tokenEntry{}, bad("the key is not the member ID of its peer URLs under this token (%s); it was written by hand, or by a host that spelled the token differently", want)
	}
	return tokenEntry{Entry: e, member: ms[0]}, nil
}

// tokenMembers decides the cluster of a token from its entries, the same
// way on every host and every path (listing, watch, cache): entries in
// registration order; an entry whose name or a peer URL an earlier valid
// entry holds does not count (its host removes it: claims); the first
// size entries that count are the cluster. An entry among those first
// size that is not a valid member makes the token unusable: etcd's own
// client would take it as a member, so a cluster without it would differ
// from theirs, and one with it cannot start.
func tokenMembers(entries []Entry, size int, token string) (members []tokenEntry, claims []claim, err error) {
	sorted := sortEntries(entries)
	names := map[string]tokenEntry{}
	urls := map[string]tokenEntry{}
	for _, e := range sorted {
		if len(members) == size {
			break
		}
		te, err := checkEntry(e, token)
		if err != nil {
			return members, claims, err
		}
		if earlier, taken := names[te.member.Name]; taken {
			claims = append(claims, claim{later: te, earlier: earlier, what: "name " + strconv.Quote(te.member.Name)})
			continue
		}
		if c, taken := claimedURL(te, urls); taken {
			claims = append(claims, c)
			continue
		}
		names[te.member.Name] = te
		for _, u := range te.member.PeerURLs {
			urls[u] = te
		}
		members = append(members, te)
	}
	return members, claims, nil
}

// sortEntries orders entries by registration.
func sortEntries(entries []Entry) []Entry {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), strings.Compare(a.Key, b.Key))
	})
	return sorted
}

func claimedURL(te tokenEntry, urls map[string]tokenEntry) (claim, bool) {
	for _, u := range te.member.PeerURLs {
		if earlier, taken := urls[u]; taken {
			return claim{later: te, earlier: earlier, what: "peer URL " + u}, true
		}
	}
	return claim{}, false
}

func membersOf(tes []tokenEntry) []Member {
	ms := make([]Member, len(tes))
	for i, te := range tes {
		ms[i] = te.member
	}
	return ms
}
