package agent

import (
	"errors"
	"strings"
	"testing"
)

const testToken = "http://10.0.0.1:2379/v2/keys/discovery/tok"

// entry is a valid registration of name at addr, created at position at.
func entry(name, addr string, at uint64) Entry {
	u := "http://" + addr + ":2380"
	return Entry{Key: FormatID(MemberID([]string{u}, testToken)), Value: name + "=" + u, Created: at, Modified: at}
}

func names(tes []tokenEntry) string {
	var ns []string
	for _, te := range tes {
		ns = append(ns, te.member.Name)
	}
	return strings.Join(ns, ",")
}

// The one rule every host applies to a token's entries.
func TestTokenMembers(t *testing.T) {
	a, b, c, d := entry("a", "10.0.0.1", 5), entry("b", "10.0.0.2", 6), entry("c", "10.0.0.3", 7), entry("d", "10.0.0.4", 8)
	bSameName := entry("b", "10.0.0.9", 7) // a second host named b
	handWritten := Entry{Key: "abc", Value: "x=http://10.0.0.7:2380", Created: 6}
	dir := Entry{Key: "sub", Created: 6, Nested: true}
	twoMembers := entry("e", "10.0.0.5", 6)
	twoMembers.Value = "e=http://10.0.0.5:2380,f=http://10.0.0.6:2380"
	tests := []struct {
		name    string
		entries []Entry
		size    int
		want    string // the members, in order
		claims  int
		bad     string // part of the error, if the token is unusable
	}{
		{"registration order, not listing order", []Entry{c, a, b}, 3, "a,b,c", 0, ""},
		{"only the first size count", []Entry{d, c, b, a}, 3, "a,b,c", 0, ""},
		{"not full yet", []Entry{b, a}, 3, "a,b", 0, ""},
		{"a later host with a taken name does not count", []Entry{a, b, bSameName, d}, 3, "a,b,d", 1, ""},
		{"a key that is not the member ID of its value", []Entry{a, handWritten, c}, 3, "", 0, "not the member ID"},
		{"a directory", []Entry{a, dir, c}, 3, "", 0, "directory"},
		{"two members in one entry", []Entry{a, twoMembers}, 3, "", 0, "2 members"},
		{"a bad entry beyond the size does not matter", []Entry{a, b, c, {Key: "zz", Value: "junk", Created: 9}}, 3, "a,b,c", 0, ""},
		{"a bad entry among the first size spoils the token", []Entry{a, b, {Key: "zz", Value: "junk", Created: 6}}, 3, "", 0, "junk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, claims, err := tokenMembers(tc.entries, tc.size, testToken)
			switch {
			case tc.bad != "":
				if !errors.Is(err, ErrRegistryData) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("err = %v; want ErrRegistryData saying %q", err, tc.bad)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got := names(ms); got != tc.want {
				t.Errorf("members %s; want %s", got, tc.want)
			}
			if len(claims) != tc.claims {
				t.Errorf("%d claims; want %d", len(claims), tc.claims)
			}
		})
	}
}

// Whatever order a host learns the entries in (listing, watch), and
// whatever part of them it has when the token fills, it decides the same
// cluster as every other host.
func TestTokenMembersIsOrderFree(t *testing.T) {
	all := []Entry{entry("a", "10.0.0.1", 5), entry("b", "10.0.0.2", 6), entry("b", "10.0.0.9", 7), entry("c", "10.0.0.3", 8), entry("d", "10.0.0.4", 9)}
	want, _, err := tokenMembers(all, 3, testToken)
	if err != nil || names(want) != "a,b,c" {
		t.Fatalf("all entries: %s, %v; want a,b,c (the later b does not count)", names(want), err)
	}
	// Every prefix of the registration order that fills the token, in
	// every rotation of the order it was learnt in.
	for n := 4; n <= len(all); n++ {
		for r := range n {
			seen := append(append([]Entry(nil), all[r:n]...), all[:r]...)
			got, _, err := tokenMembers(seen, 3, testToken)
			if err != nil || names(got) != names(want) {
				t.Errorf("learnt %d entries from %d: %s, %v; want %s", n, r, names(got), err, names(want))
			}
		}
	}
}

// A registry value is quoted and bounded in the error that names it.
func TestCheckEntryQuotesTheValue(t *testing.T) {
	e := Entry{Key: "k\x1b[2J", Value: "x=" + strings.Repeat("v", 1<<20), Created: 1}
	_, err := checkEntry(e, testToken)
	if err == nil {
		t.Fatal("checkEntry took a key that is not the member ID of its value")
	}
	if len(err.Error()) > 3*QuoteMax || strings.ContainsRune(err.Error(), 0x1b) {
		t.Fatalf("checkEntry error of %d bytes, escape raw: %v", len(err.Error()), strings.ContainsRune(err.Error(), 0x1b))
	}
}
