// Package resolver looks up the DNS records etcd's SRV discovery reads
// (_etcd-server-ssl._tcp.DOMAIN, _etcd-server._tcp.DOMAIN and their client
// twins) with miekg/dns against explicit servers, and derives from them what
// etcd derives: the --initial-cluster of a member (Cluster) and the
// endpoints of a client (ClientURLs).
//
// Queries go to the Resolver's servers in turn, over UDP with EDNS0
// (1232-byte buffer) and again over TCP when the answer is truncated; each
// query is bounded by Resolver.Timeout and the whole lookup by its ctx.
// Names are always queried fully qualified: no search domains, and no
// /etc/hosts (etcd's own lookups go through the system resolver, which
// reads /etc/hosts first).
//
// Trailing dots: LookupSRV returns targets as DNS has them, fully qualified
// with the trailing dot (as net.LookupSRV does). Cluster builds peer URLs
// from the target without it, as etcd does ("https://infra1.example.test:2380");
// ClientURLs keeps it, as etcdctl does ("https://infra1.example.test.:2379").
package resolver
