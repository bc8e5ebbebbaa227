// Package bench holds the bootstrap benchmark of etcd-discovery-agent. It
// has no code of its own outside tests: BenchmarkBootstrap (in
// bootstrap_test.go) forms real etcd clusters on loopback addresses, round
// after round, with four methods interleaved and compares how long each
// takes until every member answers /health, and how many requests the
// discovery registry sees per member:
//
//	a   the agent's bootstrap, then etcd from the env file it wrote (default flags)
//	a0  the same with --peer-wait 0 (no ordered start)
//	b   etcd's own v2 discovery (--discovery URL --discovery-fallback exit)
//	c   etcd with a precomputed static --initial-cluster
//
// It is a benchmark, not a test, so plain "go test ./..." does not run it.
// Run it with
//
//	go test ./bench -run '^$' -bench Bootstrap -benchtime 1x -timeout 30m
//
// BenchmarkPublish (dns_test.go) times three hosts' records published with
// the agent's RFC 2136 updates against nsupdate, and BenchmarkSRVLookup the
// agent's resolver against Go's net.Resolver, both on a real BIND:
//
//	go test ./bench -run '^$' -bench 'Publish|SRVLookup' -benchtime 1x
//
// BENCH_ROUNDS overrides the number of measured rounds per method and size
// (default 30); BENCH_KEEP_LOGS=DIR keeps every round's process logs in DIR.
// BENCHMARKS.md at the module root describes what is measured
// and the results.
package bench
