// Package agent is the core of etcd-discovery-agent: it decides how this
// host's etcd starts and keeps every decision in one place, while the
// protocols live in packages of their own behind small interfaces that
// this package defines where it uses them:
//
//	Registry   one discovery token (agent/etcdv2: etcd's v2 keys API
//	           through go.etcd.io/etcd/client/v2; agent/etcdv3: a v3
//	           token's key prefix through go.etcd.io/etcd/client/v3);
//	           TokenCreator and TokenDeleter make and remove tokens
//	Cluster    a running cluster: members, add, promote, remove, lock
//	           (agent/etcdv3, through go.etcd.io/etcd/client/v3)
//	Publisher  this host's DNS records (agent/dnsupdate, RFC 2136 + TSIG)
//	Output     the rendering of a Plan (EnvFile, in agent/envfile's syntax)
//
// Bootstrap validates the whole configuration, resolves the host's
// addresses and renders a trial env file before it touches anything; then
// it decides, from the data dir, the cached result, the SRV records or the
// token (rendezvous.go), a Plan: the role, the cluster state, this member
// and the member list. The Output renders the Plan. A late host joins the
// running cluster (join.go) through Cluster and the peer member-list probe
// (peers.go). Every wait is a wait (retry.go): one backoff, one clock.
// The token commands (token.go) decide the same way: CreateToken makes a
// token create-only, ShowToken reads it by the rule every host applies,
// DeleteToken removes one only once its cluster formed.
//
// Because the agent, not etcd, runs the rendezvous, the env file carries
// ETCD_INITIAL_CLUSTER_TOKEN = the string etcd hashes into member IDs for
// the token (the discovery URL of a v2 token, the v3 token itself). etcd
// hashes it the same way its own discovery does, so hosts running the
// agent and hosts running etcd's own discovery on one token form one
// cluster, and every etcd from 3.4 to 3.7 starts from either kind of token.
//
// Errors cross the seams by type: backends wrap their libraries' typed
// errors in this package's (ErrUnavailable for faults that heal, ErrAccess
// for refusals, ErrKeyExists, ErrHistoryLost, ...); every error the core
// returns wraps exactly one outcome (errors.go), which cmd maps to an exit
// code. Configuration errors name Config fields (FieldError).
package agent
