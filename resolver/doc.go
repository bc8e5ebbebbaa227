// Package resolver will hold the DNS SRV lookups (_etcd-server._tcp and
// friends, with miekg/dns) of the DNS issue; it has no code yet.
package resolver
