// Command etcd-discovery-agent brings up etcd clusters on hosts whose
// addresses are not known in advance: it registers the host under an etcd
// discovery token, waits for the token to fill and writes the environment
// file from which etcd starts. See 'etcd-discovery-agent --help'.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	cancel()
	os.Exit(code)
}
