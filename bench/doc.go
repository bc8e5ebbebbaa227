// Package bench holds the benchmarks of etcd-discovery-agent. It has no
// code of its own outside tests. Each benchmark starts real components
// (etcd, BIND, hosts on loopback addresses or in network namespaces), runs
// its rounds with the methods it compares interleaved, and writes its
// results as one section of BENCHMARKS.md:
//
//	BenchmarkBootstrap     cluster bootstrap by v2 token: the agent, etcd's
//	                       own v2 discovery and a static --initial-cluster,
//	                       registry requests counted by a proxy
//	BenchmarkV3Bootstrap   bootstrap by v3 token: the agent (etcd 3.7 from
//	                       its env file) and etcd 3.6's and 3.7's own
//	                       --discovery-token, registry gRPC calls read from
//	                       the registry's metrics
//	BenchmarkSRVBootstrap  bootstrap from DNS SRV records: the agent's SRV
//	                       mode and etcd's own --discovery-srv (root)
//	BenchmarkPublish       RFC 2136 updates: the agent's against nsupdate
//	BenchmarkSRVLookup     SRV lookups: the agent's resolver against Go's
//	BenchmarkFootprint     binary size, packages and peak RSS (GNU time) of
//	                       the agent before and after etcd's client
//	                       libraries, and what each module costs
//
// They are benchmarks, not tests, so plain "go test ./..." does not run
// them. "make bench" runs them all and rewrites every section of
// BENCHMARKS.md; one runs alone with the command its section shows, e.g.
//
//	go test ./bench -run '^$' -bench '^BenchmarkBootstrap$' -benchtime 1x -timeout 30m
//
// -benchtime 1x matters: a benchmark runs all its rounds in one call.
// BENCH_ROUNDS=n sets the number of measured rounds of every benchmark
// (each has its own default); BENCH_DOC=FILE (relative to the module root)
// makes each benchmark replace its section of FILE, between the lines
// "<!-- BEGIN BenchmarkName -->" and "<!-- END BenchmarkName -->";
// BENCH_KEEP_LOGS=DIR keeps the process logs of every round of
// BenchmarkBootstrap and BenchmarkV3Bootstrap in DIR.
package bench
