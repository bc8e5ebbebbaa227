package dnsupdate

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// testHost is a valid http host in example.test.
func testHost(name, addr string) Host {
	return Host{
		Domain: "example.test", Name: name, Addr: netip.MustParseAddr(addr),
		PeerPort: 2380, ClientPort: 2379, Scheme: "http",
	}
}

// rrStrings renders records in presentation format, tabs as spaces.
func rrStrings(rrs []dns.RR) []string {
	s := make([]string, len(rrs))
	for i, rr := range rrs {
		s[i] = strings.Join(strings.Fields(rr.String()), " ")
	}
	return s
}

func TestHostRRs(t *testing.T) {
	tests := []struct {
		name   string
		host   func(h *Host)
		target string
		want   []string
	}{
		{
			name:   "http",
			host:   func(h *Host) {},
			target: "infra1.example.test.",
			want: []string{
				"_etcd-server._tcp.example.test. 60 IN SRV 0 0 2380 infra1.example.test.",
				"_etcd-client._tcp.example.test. 60 IN SRV 0 0 2379 infra1.example.test.",
				"infra1.example.test. 60 IN A 192.0.2.11",
			},
		},
		{
			name:   "https, fqdn domain, ttl",
			host:   func(h *Host) { h.Scheme = "https"; h.Domain = "example.test."; h.TTL = 300 },
			target: "infra1.example.test.",
			want: []string{
				"_etcd-server-ssl._tcp.example.test. 300 IN SRV 0 0 2380 infra1.example.test.",
				"_etcd-client-ssl._tcp.example.test. 300 IN SRV 0 0 2379 infra1.example.test.",
				"infra1.example.test. 300 IN A 192.0.2.11",
			},
		},
		{
			name:   "SRV name",
			host:   func(h *Host) { h.SRVName = "prod"; h.Domain = "etcd.example.test" },
			target: "infra1.etcd.example.test.",
			want: []string{
				"_etcd-server-prod._tcp.etcd.example.test. 60 IN SRV 0 0 2380 infra1.etcd.example.test.",
				"_etcd-client-prod._tcp.etcd.example.test. 60 IN SRV 0 0 2379 infra1.etcd.example.test.",
				"infra1.etcd.example.test. 60 IN A 192.0.2.11",
			},
		},
		{
			name:   "https and SRV name, other ports",
			host:   func(h *Host) { h.Scheme = "https"; h.SRVName = "prod"; h.PeerPort = 12380; h.ClientPort = 12379 },
			target: "infra1.example.test.",
			want: []string{
				"_etcd-server-ssl-prod._tcp.example.test. 60 IN SRV 0 0 12380 infra1.example.test.",
				"_etcd-client-ssl-prod._tcp.example.test. 60 IN SRV 0 0 12379 infra1.example.test.",
				"infra1.example.test. 60 IN A 192.0.2.11",
			},
		},
		{
			name:   "IPv6",
			host:   func(h *Host) { h.Addr = netip.MustParseAddr("2001:db8::11") },
			target: "infra1.example.test.",
			want: []string{
				"_etcd-server._tcp.example.test. 60 IN SRV 0 0 2380 infra1.example.test.",
				"_etcd-client._tcp.example.test. 60 IN SRV 0 0 2379 infra1.example.test.",
				"infra1.example.test. 60 IN AAAA 2001:db8::11",
			},
		},
		{
			name:   "IPv4-mapped IPv6 is an A record",
			host:   func(h *Host) { h.Addr = netip.MustParseAddr("::ffff:192.0.2.11") },
			target: "infra1.example.test.",
			want: []string{
				"_etcd-server._tcp.example.test. 60 IN SRV 0 0 2380 infra1.example.test.",
				"_etcd-client._tcp.example.test. 60 IN SRV 0 0 2379 infra1.example.test.",
				"infra1.example.test. 60 IN A 192.0.2.11",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testHost("infra1", "192.0.2.11")
			tt.host(&h)
			if err := h.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := h.Target(); got != tt.target {
				t.Errorf("Target = %q, want %q", got, tt.target)
			}
			if got := rrStrings(h.RRs()); !slices.Equal(got, tt.want) {
				t.Errorf("RRs:\n got %q\nwant %q", got, tt.want)
			}
			// Every call returns fresh records.
			a, b := h.RRs(), h.RRs()
			a[0].Header().Class = dns.ClassNONE
			if b[0].Header().Class != dns.ClassINET {
				t.Error("RRs returned shared records")
			}
		})
	}
}

func TestHostValidate(t *testing.T) {
	tests := []struct {
		name    string
		host    func(h *Host)
		wantErr string
	}{
		{"empty domain", func(h *Host) { h.Domain = "" }, "empty SRV domain"},
		{"root domain", func(h *Host) { h.Domain = "." }, "empty SRV domain"},
		{"underscore in domain", func(h *Host) { h.Domain = "my_zone.test" }, `label "my_zone"`},
		{"empty label in domain", func(h *Host) { h.Domain = "a..test" }, `label ""`},
		{"name with dot", func(h *Host) { h.Name = "infra1.dc1" }, `name "infra1.dc1" becomes the first label`},
		{"empty name", func(h *Host) { h.Name = "" }, `name ""`},
		{"name with trailing hyphen", func(h *Host) { h.Name = "infra-" }, `name "infra-"`},
		{"long name", func(h *Host) { h.Name = strings.Repeat("a", 64) }, `name "aaaa`},
		{"bad SRV name", func(h *Host) { h.SRVName = "a_b" }, `SRV name "a_b"`},
		{"long SRV name", func(h *Host) { h.SRVName = strings.Repeat("s", 47) }, `SRV name`},
		{"no address", func(h *Host) { h.Addr = netip.Addr{} }, "no address"},
		{"unspecified", func(h *Host) { h.Addr = netip.IPv4Unspecified() }, "not a unicast address"},
		{"mapped unspecified", func(h *Host) { h.Addr = netip.MustParseAddr("::ffff:0.0.0.0") }, "not a unicast address"},
		{"multicast", func(h *Host) { h.Addr = netip.MustParseAddr("ff02::1") }, "not a unicast address"},
		{"zone", func(h *Host) { h.Addr = netip.MustParseAddr("fe80::1%eth0") }, "has a zone"},
		{"peer port 0", func(h *Host) { h.PeerPort = 0 }, "peer port 0 is not from 1 to 65535"},
		{"client port too big", func(h *Host) { h.ClientPort = 65536 }, "client port 65536"},
		{"no scheme", func(h *Host) { h.Scheme = "" }, `scheme "": use http or https`},
		{"tcp scheme", func(h *Host) { h.Scheme = "unix" }, `scheme "unix"`},
		{"long domain", func(h *Host) { h.Domain = strings.Repeat(strings.Repeat("d", 60)+".", 4) + "test" }, "longer than 253"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testHost("infra1", "192.0.2.11")
			tt.host(&h)
			err := h.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidHost) {
				t.Fatalf("Validate = %v, want ErrInvalidHost %q", err, tt.wantErr)
			}
			if rrs := h.RRs(); rrs != nil {
				t.Errorf("RRs of an invalid host = %v, want nil", rrs)
			}
		})
	}
}
