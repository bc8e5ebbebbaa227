// Package systemd holds the units that run etcd-discovery-agent under
// systemd: etcd-discovery-agent.service, the drop-in
// etcd.service.d/10-discovery-agent.conf for Debian's etcd.service, and
// agent.env.example, an example of the agent's environment file.
//
// It is a Go package only so that the test checking those files
// (systemd-analyze verify, and the example against the agent's flags and
// the environment-file subset) lives next to them and runs with go test.
package systemd
