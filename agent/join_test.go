package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// What a running cluster's member list says of a host's peer URL.
func TestClassify(t *testing.T) {
	const u = "http://10.0.0.4:2380"
	started := ClusterMember{ID: 1, Name: "infra1", PeerURLs: []string{"http://10.0.0.1:2380"}, ClientURLs: []string{"http://10.0.0.1:2379"}}
	tests := []struct {
		name string
		ms   []ClusterMember
		want joinState
	}{
		{"not a member", []ClusterMember{started}, joinAdd},
		{"added, not started", []ClusterMember{started, {ID: 4, PeerURLs: []string{u}}}, joinResume},
		{"initial member of a forming cluster (named by the static list)", []ClusterMember{started, {ID: 4, Name: "0", PeerURLs: []string{u}}}, joinInitial},
		{"a started member has the URL", []ClusterMember{started, {ID: 4, Name: "old", PeerURLs: []string{u}, ClientURLs: []string{"http://10.0.0.4:2379"}}}, joinTaken},
		{"a started member has the name", []ClusterMember{started, {ID: 5, Name: "infra4", PeerURLs: []string{"http://10.0.0.9:2380"}, ClientURLs: []string{"http://10.0.0.9:2379"}}}, joinTaken},
		{"an unstarted member has the name", []ClusterMember{started, {ID: 5, Name: "", PeerURLs: []string{"http://10.0.0.9:2380"}}}, joinAdd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := joinClassify(tc.ms, "infra4", u); got != tc.want {
				t.Errorf("joinClassify = %d, want %d", got, tc.want)
			}
		})
	}
}

// The joined member list names the new member after this host and an
// unstarted other by its ID, keeping every peer URL.
func TestJoinedMembers(t *testing.T) {
	ms := []ClusterMember{
		{ID: 0x1, Name: "infra1", PeerURLs: []string{"http://10.0.0.1:2380"}, ClientURLs: []string{"http://10.0.0.1:2379"}},
		{ID: 0xab, PeerURLs: []string{"http://10.0.0.5:2380"}},
		{ID: 0x4, PeerURLs: []string{"http://10.0.0.4:2380"}},
	}
	got := InitialCluster(joinedMembers(ms, 0x4, "infra4"))
	want := "infra1=http://10.0.0.1:2380,ab=http://10.0.0.5:2380,infra4=http://10.0.0.4:2380"
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if _, err := ParseCluster(got); err != nil {
		t.Errorf("the list does not parse: %v", err)
	}
}

// A member list whose names or URLs could not be written into the env file
// as they are is refused, naming the member; nothing of it is used.
func TestMembershipIsValidated(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"newline in a name", `[{"id":1,"name":"a\nETCD_X=1","peerURLs":["http://10.0.0.1:2380"],"clientURLs":["http://10.0.0.1:2379"]}]`, "member 1"},
		{"quote in a peer URL", `[{"id":1,"name":"a","peerURLs":["http://10.0.0.1:2380\""],"clientURLs":[]}]`, "member 1"},
		{"path in a client URL", `[{"id":2,"name":"b","peerURLs":["http://10.0.0.2:2380"],"clientURLs":["http://10.0.0.2:2379/x"]}]`, "member 2"},
		{"no peer URLs", `[{"id":3,"name":"c","peerURLs":[]}]`, "without an ID or peer URLs"},
		{"no ID", `[{"name":"c","peerURLs":["http://10.0.0.3:2380"]}]`, "without an ID or peer URLs"},
		{"empty list", `[]`, "empty"},
		{"not JSON", `<html>`, "invalid member list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/members" {
					http.NotFound(w, r)
					return
				}
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ms, err := Peers{}.Members(ctx, []string{srv.URL})
			if ms != nil || !errors.Is(err, errInvalidMembers) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Members = %v, %v; want an invalid-member-list error naming %q", ms, err, tc.want)
			}
		})
	}
}

// Nobody answering is not an error: no cluster runs.
func TestMembershipWithoutAnswers(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // a closed port: connection refused
	ms, err := Peers{}.Members(context.Background(), []string{url})
	if ms != nil || err != nil {
		t.Errorf("Members = %v, %v; want nil, nil", ms, err)
	}
}

// A cluster is known by address when every peer URL names an IP.
func TestByAddress(t *testing.T) {
	for _, tc := range []struct {
		urls []string
		want bool
	}{
		{[]string{"http://10.0.0.1:2380", "https://[fd00::1]:2380"}, true},
		{[]string{"http://10.0.0.1:2380", "http://infra2.example.test:2380"}, false},
		{[]string{"http://infra1.example.test:2380"}, false},
	} {
		var ms []ClusterMember
		for i, u := range tc.urls {
			ms = append(ms, ClusterMember{ID: uint64(i + 1), PeerURLs: []string{u}})
		}
		if got := byAddress(ms); got != tc.want {
			t.Errorf("byAddress(%v) = %v, want %v", tc.urls, got, tc.want)
		}
	}
}
