package etcdv3

import (
	"strconv"
	"testing"
)

// FuzzSize: the agent reads a v3 size exactly as etcd's own v3 discovery
// client does (strconv.ParseInt(value, 10, 0), and positive, else "size
// key is bad"), and refuses on top only sizes no cluster has.
func FuzzSize(f *testing.F) {
	for _, s := range []string{"3", "+2", " 3", "3 ", "0", "-1", "007", "abc", "", "3\n", "0x3", "1e1", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ours, ok := parseSize(v)
		theirs, err := strconv.ParseInt(v, 10, 0) // etcd: v3discovery, getClusterSize
		etcdOK := err == nil && theirs > 0
		switch {
		case ok && (!etcdOK || int64(ours) != theirs):
			t.Fatalf("size %q: the agent reads %d, etcd %d, %v", v, ours, theirs, err)
		case !ok && etcdOK && theirs < 1<<31:
			t.Fatalf("size %q: etcd reads %d, the agent refuses it", v, theirs)
		}
	})
}
