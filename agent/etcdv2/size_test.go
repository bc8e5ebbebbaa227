package etcdv2

import (
	"strconv"
	"testing"
)

// FuzzSize: the agent reads a v2 size exactly as etcd's own v2 discovery
// client does (strconv.ParseUint(value, 10, 0); an error is "size key is
// bad"), and refuses on top only 0 and sizes no cluster has.
func FuzzSize(f *testing.F) {
	for _, s := range []string{"3", "+1", " 3", "3 ", "0", "-1", "007", "abc", "", "3\n", "0x3", "1e1", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ours, ok := parseSize(v)
		theirs, err := strconv.ParseUint(v, 10, 0) // etcd: discovery.go, checkCluster
		switch {
		case ok && (err != nil || uint64(ours) != theirs):
			t.Fatalf("size %q: the agent reads %d, etcd %d, %v", v, ours, theirs, err)
		case !ok && err == nil && theirs != 0 && theirs < 1<<31:
			t.Fatalf("size %q: etcd reads %d, the agent refuses it", v, theirs)
		}
	})
}
