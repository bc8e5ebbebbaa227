package resolver

import (
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
)

// srvs parses "target/priority/weight ..." into records on port 2380.
func srvs(t *testing.T, spec string) []*net.SRV {
	t.Helper()
	var out []*net.SRV
	for _, f := range strings.Fields(spec) {
		var s net.SRV
		var target string
		parts := strings.Split(f, "/")
		if len(parts) != 3 {
			t.Fatalf("bad record spec %q", f)
		}
		target = parts[0]
		if _, err := fmt.Sscanf(parts[1]+" "+parts[2], "%d %d", &s.Priority, &s.Weight); err != nil {
			t.Fatalf("bad record spec %q: %v", f, err)
		}
		s.Target, s.Port = target+".example.test.", 2380
		out = append(out, &s)
	}
	return out
}

func targets(srvs []*net.SRV) string {
	var s []string
	for _, r := range srvs {
		s = append(s, strings.TrimSuffix(r.Target, ".example.test."))
	}
	return strings.Join(s, " ")
}

// scriptedRand returns the draws in order and records each n it is asked
// for; it fails the test when asked for more draws than scripted or for a
// draw outside [0, n).
func scriptedRand(t *testing.T, draws []int, asked *[]int) func(int) int {
	return func(n int) int {
		*asked = append(*asked, n)
		if len(*asked) > len(draws) {
			t.Errorf("Rand(%d) called more than the %d scripted times", n, len(draws))
			return 0
		}
		d := draws[len(*asked)-1]
		if d < 0 || d >= n {
			t.Errorf("scripted draw %d is not in [0, %d)", d, n)
		}
		return d
	}
}

// RFC 2782 order with a scripted random source: priorities ascending,
// weighted selection within each priority, exactly the draws expected.
func TestSortSRV(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		draws []int // what Rand returns, in order
		want  string
		asked []int // the n of every Rand(n) call
	}{
		{name: "empty"},
		{name: "one record", in: "a/0/10", want: "a"},
		{name: "priorities ascending, zero weights keep answer order", in: "c/20/0 a/0/0 b/10/0 d/10/0", want: "a b d c"},
		{name: "all weights zero: no draws, answer order", in: "x/1/0 y/1/0 z/1/0", want: "x y z"},
		{
			// sorted by weight first: a10 b20 c70 (total 100); draw 0 picks
			// a (running sum 10 > 0); then b20 c70 (total 90): draw 25 passes
			// b (20) and picks c (90 > 25); b is last.
			name: "weighted", in: "c/0/70 a/0/10 b/0/20",
			draws: []int{0, 25}, asked: []int{100, 90}, want: "a c b",
		},
		{
			name: "a draw on a running-sum boundary picks the next record", in: "a/0/10 b/0/20 c/0/70",
			// draw 10 passes a (10 > 10 is false) and picks b, which swaps
			// places with a: a10 c70 (total 80) remain.
			draws: []int{10, 19}, asked: []int{100, 80}, want: "b c a",
		},
		{
			name: "highest draw picks the last record", in: "a/0/10 b/0/20 c/0/70",
			// c swaps places with a: b20 a10 remain, and draw 29 picks a.
			draws: []int{99, 29}, asked: []int{100, 30}, want: "c a b",
		},
		{
			// z0 sorts first but can never be drawn while weight is left:
			// it ends up after every weighted record.
			name: "zero weight goes after the weighted records", in: "a/0/5 z/0/0 b/0/5",
			draws: []int{0, 0}, asked: []int{10, 5}, want: "a b z",
		},
		{
			name: "each priority is shuffled on its own", in: "p1b/1/1 p0a/0/3 p0b/0/1 p1a/1/1",
			// priority 0: p0b1 p0a3 (total 4), draw 1 picks p0a; then p0b
			// alone. Priority 1: p1b1 p1a1 (stable), draw 1 picks p1a.
			draws: []int{1, 1}, asked: []int{4, 2}, want: "p0a p0b p1a p1b",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked []int
			r := &Resolver{Rand: scriptedRand(t, tc.draws, &asked)}
			recs := srvs(t, tc.in)
			r.sortSRV(recs)
			if got := targets(recs); got != tc.want {
				t.Errorf("order = %q; want %q", got, tc.want)
			}
			if !slices.Equal(asked, tc.asked) {
				t.Errorf("Rand asked for %v; want %v", asked, tc.asked)
			}
		})
	}
}

// With a real (seeded, so reproducible) random source, each record comes
// first in proportion to its weight.
func TestSortSRVWeightDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := &Resolver{Rand: rng.IntN}
	const runs = 20000
	first := map[string]int{}
	for range runs {
		recs := srvs(t, "a/0/10 b/0/30 c/0/60 z/0/0 lo/1/100")
		r.sortSRV(recs)
		first[targets(recs[:1])]++
		if last := targets(recs[3:]); last != "z lo" {
			t.Fatalf("records after the weighted ones: %q; want %q", last, "z lo")
		}
	}
	for target, share := range map[string]float64{"a": 0.1, "b": 0.3, "c": 0.6} {
		got := float64(first[target]) / runs
		if got < share-0.02 || got > share+0.02 {
			t.Errorf("%s first in %.3f of runs; want %.2f ± 0.02", target, got, share)
		}
	}
}

// The default random source is math/rand/v2 and stays within [0, n).
func TestDefaultRand(t *testing.T) {
	r := &Resolver{}
	for range 1000 {
		if n := r.intn(3); n < 0 || n >= 3 {
			t.Fatalf("intn(3) = %d", n)
		}
	}
}
