package agent

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/go-sockaddr"
)

func ifAddr(t *testing.T, name, cidr string) sockaddr.IfAddr {
	t.Helper()
	sa, err := sockaddr.NewSockAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	return sockaddr.IfAddr{SockAddr: sa, Interface: net.Interface{Name: name, Flags: net.FlagUp}}
}

func TestResolveAddressFrom(t *testing.T) {
	addrs := sockaddr.IfAddrs{
		ifAddr(t, "lo", "127.0.0.1/8"),
		ifAddr(t, "eth0", "10.1.2.3/24"),
		ifAddr(t, "eth1", "192.168.7.9/24"),
		ifAddr(t, "eth1", "2001:db8::7/64"),
	}
	tests := []struct {
		spec, want, err string
	}{
		{"10.9.8.7", "10.9.8.7", ""},
		{"[2001:db8::1]", "2001:db8::1", ""},
		{"::ffff:10.0.0.1", "10.0.0.1", ""},
		{`{{ . | include "name" "eth0" | attr "address" }}`, "10.1.2.3", ""},
		{`{{ . | include "name" "eth1" | include "type" "IPv6" | attr "address" }}`, "2001:db8::7", ""},
		{`{{ . | include "name" "eth9" | attr "address" }}`, "", "found no address"},
		{`{{ . | include "rfc" "1918" | join "address" " " }}`, "", "found 2 addresses (10.1.2.3, 192.168.7.9)"},
		{"eth0", "", "neither an IP address nor a go-sockaddr template"},
		{"fe80::1%eth0", "", "neither"},
		{`{{ "not-an-ip" }}`, "", "not an IP address"},
		{`{{ nosuchfunc }}`, "", "template"},
	}
	for _, tc := range tests {
		got, err := ResolveAddressFrom(tc.spec, addrs)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrAddress) {
				t.Errorf("ResolveAddressFrom(%q) = %v, %v; want error containing %q", tc.spec, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ResolveAddressFrom(%q) = %v, %v; want %s", tc.spec, got, err, tc.want)
		}
	}
}

// On the real host: the loopback interface has 127.0.0.1.
func TestResolveAddressOnThisHost(t *testing.T) {
	got, err := ResolveAddress(`{{ GetAllInterfaces | include "name" "^lo$" | include "type" "IPv4" | attr "address" }}`)
	if err != nil || got.String() != "127.0.0.1" {
		t.Fatalf("ResolveAddress(lo) = %v, %v; want 127.0.0.1", got, err)
	}
}
