package agent

import (
	"strings"
	"testing"
)

// An env file is never written unless its cluster holds this member once,
// with its own peer URLs.
func TestPlanCheck(t *testing.T) {
	self := host("a", "10.0.0.1")
	b := host("b", "10.0.0.2")
	tests := []struct {
		name string
		p    Plan
		bad  string
	}{
		{"self and another", Plan{State: "new", Self: self, Members: []Member{b, self}}, ""},
		{"self missing", Plan{State: "new", Self: self, Members: []Member{b}}, "does not hold this host"},
		{"self under another URL", Plan{State: "new", Self: self, Members: []Member{b, host("a", "10.0.0.9")}}, "clashes"},
		{"another member with self's URL", Plan{State: "new", Self: self, Members: []Member{self, host("x", "10.0.0.1")}}, "clashes"},
		{"no cluster, new", Plan{State: "new", Self: self}, "no member list"},
		{"no cluster, an initialised member", Plan{State: "existing", Source: SourceDataDir, Self: self}, ""},
		{"bad state", Plan{State: "old", Self: self, Members: []Member{self}}, "state"},
		{"proxy", Plan{Role: RoleProxy, Self: self, Members: []Member{b}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Check()
			if (err != nil) != (tc.bad != "") || err != nil && !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("Check = %v; want %q", err, tc.bad)
			}
		})
	}
}
