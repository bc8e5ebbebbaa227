package agent

import (
	"slices"
	"testing"

	"go.etcd.io/etcd/client/pkg/v3/types"
)

// FuzzRegistryValue: whatever bytes a registry value holds, what the agent
// takes from it as a member, etcd's own discovery client (which hands the
// joined values to types.NewURLsMap) takes too, with the same name and the
// same peer URLs, byte for byte, as etcd hashes them into member IDs. The
// agent may refuse more than etcd does; it never reads a value otherwise.
func FuzzRegistryValue(f *testing.F) {
	for _, s := range []string{
		"infra1=http://10.0.0.1:2380",
		"mu=http://127.0.0.91:2380,mu=http://127.0.0.92:2380",
		"a=https://[fd00::1]:2380",
		"a=http://host.example.com:2380",
		"a=http://10.0.0.1:2380/",
		"a= http://10.0.0.1:2380",
		"a=http://10.0.0.1:2380,,",
		"a=unix://x:1",
		"a=http://10.0.0.1",
		"=http://10.0.0.1:2380",
		"a=HTTP://10.0.0.1:2380",
		"a=http://10.0.0.01:2380",
		"a=http://10.0.0.1:02380",
		"a b=http://10.0.0.1:2380",
		"a=http://10.0.0.1:2380\nETCD_X=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		ms, err := ParseCluster(value)
		if err != nil || len(ms) != 1 {
			return
		}
		m := ms[0]
		theirs, err := types.NewURLsMap(value)
		if err != nil {
			t.Fatalf("the agent takes %q as %v; etcd refuses it: %v", value, m, err)
		}
		urls, ok := theirs[m.Name]
		if len(theirs) != 1 || !ok {
			t.Fatalf("the agent reads %q as member %q; etcd as %v", value, m.Name, theirs)
		}
		ours := slices.Clone(m.PeerURLs)
		slices.Sort(ours)
		if got := urls.StringSlice(); !slices.Equal(got, ours) {
			t.Fatalf("the agent reads %q as URLs %v; etcd hashes %v", value, ours, got)
		}
		if MemberID(m.PeerURLs, "t") != MemberID(urls.StringSlice(), "t") {
			t.Fatalf("member IDs differ for %q", value)
		}
	})
}
