module github.com/etcd-discovery-agent/etcd-discovery-agent

go 1.26

require (
	github.com/hashicorp/go-sockaddr v1.0.7
	github.com/miekg/dns v1.1.73
	github.com/spf13/pflag v1.1.0
)

require (
	github.com/hashicorp/errwrap v1.1.0 // indirect
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
