package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

// binder declares flags and records which Config field each sets, so that
// the core's errors, which name fields, reach the user naming flags.
type binder struct {
	fs    *pflag.FlagSet
	names flags
}

func newBinder(fs *pflag.FlagSet) binder {
	return binder{fs: fs, names: flags{fs: fs, fields: map[string]string{}}}
}

func (b binder) bind(field, name string) { b.names.fields[field] = name }

func (b binder) str(p *string, field, name, def, usage string) {
	b.fs.StringVar(p, name, def, usage)
	b.bind(field, name)
}

func (b binder) strs(p *[]string, field, name string, usage string) {
	b.fs.StringSliceVar(p, name, nil, usage)
	b.bind(field, name)
}

func (b binder) int(p *int, field, name string, def int, usage string) {
	b.fs.IntVar(p, name, def, usage)
	b.bind(field, name)
}

func (b binder) dur(p *time.Duration, field, name string, def time.Duration, usage string) {
	b.fs.DurationVar(p, name, def, usage)
	b.bind(field, name)
}

func (b binder) flag(p *bool, field, name string, usage string) {
	b.fs.BoolVar(p, name, false, usage)
	b.bind(field, name)
}

// credentials declares the TLS and auth flags of one etcd the agent talks
// to: PREFIX-cacert, PREFIX-cert, PREFIX-key, and with auth PREFIX-user and
// PREFIX-password-file (the password only from a file, never a flag).
func (b binder) credentials(c *agent.Credentials, field, prefix, what string, auth, skipVerify bool) {
	b.str(&c.CACert, field+".CACert", prefix+"-cacert", "", "CA bundle (PEM) to verify "+what+" with (default: the system's trust store)")
	b.str(&c.Cert, field+".Cert", prefix+"-cert", "", "client certificate (PEM) for "+what+", where it demands one")
	b.str(&c.Key, field+".Key", prefix+"-key", "", "key (PEM) of the "+prefix+"-cert client certificate")
	if skipVerify {
		b.flag(&c.InsecureSkipVerify, field+".InsecureSkipVerify", prefix+"-insecure-skip-tls-verify", "do not verify the certificate of "+what+" (tests only)")
	}
	if auth {
		b.str(&c.User, field+".User", prefix+"-user", "", "etcd user for "+what+" (with "+prefix+"-password-file)")
		b.str(&c.PasswordFile, field+".PasswordFile", prefix+"-password-file", "", "file whose first line is the password of "+prefix+"-user")
	}
}

// dns declares the flags that say where this host's DNS records go.
func (b binder) dns(d *agent.DNSConfig) {
	b.str(&d.Server, "DNS.Server", "publish-server", "", "publish this host's SRV and A/AAAA records with RFC 2136 updates to this DNS server, HOST:PORT")
	b.str(&d.Zone, "DNS.Zone", "publish-zone", "", "DNS zone the records go into (required with --publish-server)")
	b.str(&d.Domain, "DNS.Domain", "srv-domain", "", "SRV domain, as etcd's --discovery-srv (default: the zone)")
	b.str(&d.SRVName, "DNS.SRVName", "srv-name", "", "SRV service suffix, as etcd's --discovery-srv-name")
	b.str(&d.KeyFile, "DNS.KeyFile", "tsig-key-file", "", "TSIG key file as tsig-keygen writes it (required with --publish-server)")
	b.dur(&d.TTL, "DNS.TTL", "dns-ttl", time.Minute, "TTL of the published records")
}
