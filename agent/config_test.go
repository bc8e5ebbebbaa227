package agent

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckDiscoveryURL(t *testing.T) {
	for _, tc := range []struct {
		url, bad string
	}{
		{"http://10.0.0.1:2379/v2/keys/discovery/abc", ""},
		{"https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579", ""},
		{"http://10.0.0.1:2379/v2/keys/discovery/abc/", "trailing slash"},
		{"http://10.0.0.1:2379/v2/keys/discovery/abc?x=1", "query"},
		{"http://10.0.0.1:2379/v2/keys/discovery/a%20b", "percent-encoding"},
		{"http://10.0.0.1:2379/v2/keys/a/../discovery/abc", "dot segments"},
		{"http://10.0.0.1:2379/v2/keys/./abc", "dot segments"},
		{"http://u:p@10.0.0.1:2379/v2/keys/abc", "user info"},
		{"ftp://10.0.0.1/abc", "http or https"},
		{"http://10.0.0.1:2379", "no token path"},
		{"HTTP://10.0.0.1:2379/abc", "canonical form"},
	} {
		err := CheckDiscoveryURL(tc.url)
		if (err != nil) != (tc.bad != "") || err != nil && !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("CheckDiscoveryURL(%q) = %v; want %q", tc.url, err, tc.bad)
		}
	}
	// The message gives the form to use.
	if err := CheckDiscoveryURL("http://10.0.0.1:2379/v2/keys/a/../b/"); err == nil || !strings.Contains(err.Error(), "write it as http://10.0.0.1:2379/v2/keys/b on every host") {
		t.Errorf("no canonical form in %v", err)
	}
}

func validConfig() Config {
	return Config{
		Name: "a", Discovery: testToken, AdvertiseAddress: "10.0.0.1", PeerPort: 2380, ClientPort: 2379, Scheme: "http",
		DataDir: "/d", EnvFile: "/e", StateDir: "/s", Timeout: time.Minute, OnFull: OnFullExit, JoinAs: JoinAsLearner, Output: OutputStatic,
	}
}

// Every problem is found at once, each named by its field.
func TestValidateNamesFields(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	c.Name, c.PeerPort, c.DNS = "a b", 0, DNSConfig{Server: "10.0.0.53", Zone: "exa mple", TTL: time.Second, Check: "error"}
	c.DiscoveryAuth = Credentials{User: "u"}
	err := c.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Validate = %v; want ErrConfig", err)
	}
	var fields []string
	var walk func(error)
	walk = func(e error) {
		var fe *FieldError
		if errors.As(e, &fe) && e == error(fe) {
			fields = append(fields, fe.Field)
		}
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range u.Unwrap() {
				walk(x)
			}
		} else if u, ok := e.(interface{ Unwrap() error }); ok {
			walk(u.Unwrap())
		}
	}
	walk(err)
	for _, want := range []string{"Name", "PeerPort", "DNS.Server", "DNS.Zone", "DNS.KeyFile", "DiscoveryAuth.PasswordFile"} {
		if !strings.Contains(strings.Join(fields, " "), want) {
			t.Errorf("no FieldError for %s in %v (%v)", want, fields, err)
		}
	}
}

// The etcd version decides which outputs and on-full choices can work; it
// is read as etcd --version prints it or as releases are tagged, and a
// value that is no version is named.
func TestEtcdVersionDecides(t *testing.T) {
	for _, tc := range []struct {
		version, output string
		onFull          OnFull
		bad             string
	}{
		{"3.4.23", OutputDiscovery, OnFullProxy, ""},
		{"v3.6.16", OutputDiscovery, OnFullExit, ""},
		{"3.7.3", OutputDiscovery, OnFullExit, "removed in 3.7"},
		{"v3.7.3", OutputDiscovery, OnFullExit, "removed in 3.7"},
		{"3.6.16", OutputStatic, OnFullProxy, "removed in 3.6"},
		{"", OutputStatic, OnFullExit, ""},
		{"", OutputDiscovery, OnFullExit, "give it, or the etcd binary"},
		{"", OutputStatic, OnFullProxy, "give it, or the etcd binary"},
		{"banana", OutputDiscovery, OnFullExit, `"banana" is not an etcd version`},
		{"latest", OutputStatic, OnFullProxy, `"latest" is not an etcd version`},
	} {
		c := validConfig()
		c.EtcdVersion, c.Output, c.OnFull = tc.version, tc.output, tc.onFull
		err := c.Validate()
		if (err != nil) != (tc.bad != "") || err != nil && !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("version %q, output %s, on-full %s: %v; want %q", tc.version, tc.output, tc.onFull, err, tc.bad)
		}
	}
}
