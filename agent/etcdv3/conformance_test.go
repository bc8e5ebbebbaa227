package etcdv3_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv3"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/registrytest"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// The registry conformance suite on the v3 API of etcd 3.4 and 3.7.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		bin  func(testing.TB) string
	}{
		{"etcd3.4", testenv.EtcdBinary},
		{"etcd3.7", func(t testing.TB) string { return testenv.BuildEtcd(t, testenv.Etcd37) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testenv.StartEtcd(t, testenv.EtcdConfig{Bin: tc.bin(t)})
			top := t
			registrytest.Run(t, registrytest.Backend{
				NewToken: func(t *testing.T, size int) registrytest.Token {
					tok := &v3Token{top: top, m: m, token: registrytest.RandomToken(t)}
					reg := tok.open(t)
					testenv.Must(t, reg.Create(t.Context(), size, 0), "create the token")
					return tok
				},
				GoodSizes:       map[string]int{"3": 3, "+2": 2, "007": 7},
				BadSizes:        []string{" 3", "3 ", "0", "-1", "abc", "", "3.0"},
				ListsOnRegister: true,
			})
		})
	}
}

type v3Token struct {
	top   testing.TB // the test that started the registry, and restarts it
	m     *testenv.Etcd
	token string
}

func (tok *v3Token) open(t *testing.T) *etcdv3.Registry {
	reg, err := etcdv3.NewRegistry([]string{tok.m.ClientURL}, tok.token, agent.Access{})
	testenv.Must(t, err, "registry")
	t.Cleanup(func() { reg.Close() })
	return reg
}

func (tok *v3Token) Open(t *testing.T) agent.Registry { return tok.open(t) }

func (tok *v3Token) client(t *testing.T) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{tok.m.ClientURL}, DialTimeout: 5 * time.Second})
	testenv.Must(t, err, "client")
	t.Cleanup(func() { c.Close() })
	return c
}

func (tok *v3Token) put(t *testing.T, key, value string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := tok.client(t).Put(ctx, "/_etcd/registry/"+tok.token+"/"+key, value)
	testenv.Must(t, err, "put %s", key)
}

func (tok *v3Token) PutRaw(t *testing.T, key, value string) { tok.put(t, "members/"+key, value) }
func (tok *v3Token) PutSize(t *testing.T, value string)     { tok.put(t, "_config/size", value) }

func (tok *v3Token) Restart(t *testing.T) {
	tok.m.Process = tok.m.Process.Restart(tok.top)
	tok.m.WaitHealthy(t, 30*time.Second)
}

// LoseHistory compacts the registry's history up to now: one more write,
// then a compaction at its revision (which compaction keeps).
func (tok *v3Token) LoseHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := tok.client(t)
	resp, err := c.Put(ctx, "/testenv/compact", "x")
	testenv.Must(t, err, "put")
	_, err = c.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	testenv.Must(t, err, "compact")
}
