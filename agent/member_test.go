package agent

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// The worked examples of the spec (section 1.3), verified there on etcd 3.4.23.
func TestMemberAndClusterIDsMatchEtcd(t *testing.T) {
	tests := []struct {
		name  string
		urls  []string
		token string
		want  string
	}{
		{"static default token", []string{"http://192.168.2.210:2380"}, "etcd-cluster", "c39bdec535db1fd5"},
		{"public discovery URL", []string{"http://192.168.2.210:2380"}, "https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579cbf573de", "c80d705611a8f376"},
		{"two URLs, unsorted", []string{"http://127.0.0.92:2380", "http://127.0.0.91:2380"}, "http://127.0.0.1:4001/v2/keys/_etcd/registry/multi", "bd2be178d13bc640"},
		{"SRV target", []string{"https://infra1.example.test:2380"}, "srv-tok", "498191d87beb88a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatID(MemberID(tc.urls, tc.token)); got != tc.want {
				t.Errorf("MemberID(%v, %q) = %s; want %s", tc.urls, tc.token, got, tc.want)
			}
		})
	}
	id := MemberID([]string{"http://192.168.2.210:2380"}, "etcd-cluster")
	if got := FormatID(ClusterID([]uint64{id})); got != "919adc0be1a91785" {
		t.Errorf("ClusterID = %s; want 919adc0be1a91785", got)
	}
}

func TestRegistryValueIsSortedPairs(t *testing.T) {
	m := Member{Name: "mu", PeerURLs: []string{"http://127.0.0.92:2380", "http://127.0.0.91:2380"}}
	want := "mu=http://127.0.0.91:2380,mu=http://127.0.0.92:2380"
	if got := m.RegistryValue(); got != want {
		t.Errorf("RegistryValue = %q; want %q", got, want)
	}
}

func TestValidateURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:2380", true},
		{"https://[2001:db8::1]:2380", true},
		{"http://infra1.example.test:2380", true},
		{"http://127.0.0.1", false},              // no port
		{"http://127.0.0.1:2380/", false},        // path
		{"http://127.0.0.1:2380/x", false},       // path
		{"http://127.0.0.1:2380?a=b", false},     // query
		{"ftp://127.0.0.1:2380", false},          // scheme
		{"http://u:p@127.0.0.1:2380", false},     // user info
		{"http://127.0.0.1:0", false},            // port 0
		{"http://127.0.0.1:65536", false},        // port range
		{"http://127.0.0.1:02380", false},        // not canonical
		{"http://[2001:DB8::1]:2380", false},     // not canonical
		{"http://[fe80::1%25eth0]:2380", false},  // zone
		{"http://bad_host:2380", false},          // underscore
		{"http://127.0.0.1:2380\nX=1", false},    // newline
		{"http://127.0.0.1:2380\"", false},       // quote
		{"http://$(reboot):2380", false},         // shell
		{"HTTP://127.0.0.1:2380", false},         // not canonical
		{"http://exa mple.test:2380", false},     // space
		{"http://-leading.example:2380", false},  // bad label
		{"http://example.test.:2380", false},     // trailing dot
		{"http://127.0.0.1:2380#frag", false},    // fragment
		{"http://[::ffff:127.0.0.1]:2380", true}, // mapped, canonical form
	}
	for _, tc := range tests {
		err := ValidateURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateURL(%q) = %v; want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidMember) {
			t.Errorf("ValidateURL(%q) error %v is not ErrInvalidMember", tc.url, err)
		}
	}
}

func TestParseCluster(t *testing.T) {
	tests := []struct {
		in      string
		members int
		err     string
	}{
		{"a=http://127.0.0.1:2380", 1, ""},
		{"a=http://127.0.0.1:2380,b=http://127.0.0.2:2380", 2, ""},
		{"a=http://127.0.0.1:2380,a=http://127.0.0.2:2380", 1, ""},
		{"", 0, "empty"},
		{"a", 0, "not name=url"},
		{"a=http://127.0.0.1:2380, b=http://127.0.0.2:2380", 0, "name"},
		{"a=http://127.0.0.1:2380,b=http://127.0.0.1:2380", 0, "claimed by"},
		{"-a=http://127.0.0.1:2380", 0, "name"},
		{"a=b=http://127.0.0.1:2380", 0, "URL"},
	}
	for _, tc := range tests {
		ms, err := ParseCluster(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseCluster(%q) = %v; want %d members", tc.in, err, tc.members)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseCluster(%q) = %v, %v; want an error mentioning %q", tc.in, ms, err, tc.err)
		case tc.err == "" && len(ms) != tc.members:
			t.Errorf("ParseCluster(%q) = %d members; want %d", tc.in, len(ms), tc.members)
		}
		if err == nil && InitialCluster(ms) != tc.in {
			t.Errorf("InitialCluster(ParseCluster(%q)) = %q; want the input back", tc.in, InitialCluster(ms))
		}
	}
}

func TestHostURLBracketsIPv6(t *testing.T) {
	for addr, want := range map[string]string{
		"10.0.0.1":    "https://10.0.0.1:2380",
		"2001:db8::1": "https://[2001:db8::1]:2380",
	} {
		u := HostURL("https", netip.MustParseAddr(addr), 2380)
		if u != want {
			t.Errorf("HostURL(%s) = %s; want %s", addr, u, want)
		}
		if err := ValidateURL(u); err != nil {
			t.Errorf("HostURL(%s) = %s does not validate: %v", addr, u, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"etcd1": true, "host-1.example": true, "a_b": true, "": false, "-a": false,
		"a b": false, "a=b": false, "a,b": false, "a$b": false, strings.Repeat("a", 129): false,
	} {
		if err := ValidateName(name); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v; want ok=%v", name, err, ok)
		}
	}
}
