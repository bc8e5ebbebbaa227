package resolver_test

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

// The --initial-cluster an etcd member started with --discovery-srv
// example.test, --initial-advertise-peer-urls http://10.0.0.12:2380 and
// --name infra2 derives, e.g.
// 0=http://infra1.example.test:2380,infra2=http://infra2.example.test:2380,1=http://infra3.example.test:2380
func ExampleResolver_Cluster() {
	r, err := resolver.FromResolvConf("/etc/resolv.conf")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cluster, err := r.Cluster(ctx, "example.test", "", []string{"http://10.0.0.12:2380"}, "infra2")
	if err != nil {
		fmt.Println(err) // e.g. cannot find local etcd member "infra2" in SRV records of example.test: ...
		return
	}
	fmt.Println(cluster)
}

// Client endpoints as etcdctl --discovery-srv example.test finds them, with
// the SRV target's trailing dot: https://infra1.example.test.:2379
func ExampleResolver_ClientURLs() {
	r := &resolver.Resolver{Servers: []string{"127.0.0.1:53"}, Timeout: time.Second}
	urls, err := r.ClientURLs(context.Background(), "example.test", "")
	if resolver.IsNotFound(err) {
		fmt.Println("no client SRV records")
		return
	}
	fmt.Println(urls, err)
}
