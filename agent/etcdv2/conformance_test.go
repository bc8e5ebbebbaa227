package etcdv2_test

import (
	"strings"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv2"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/registrytest"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// The registry conformance suite on etcd 3.4's v2 keys API.
func TestConformance(t *testing.T) {
	m := testenv.StartEtcd(t, testenv.EtcdConfig{EnableV2: true})
	top := t
	registrytest.Run(t, registrytest.Backend{
		NewToken: func(t *testing.T, size int) registrytest.Token {
			tok := &v2Token{top: top, m: m, url: m.ClientURL + "/v2/keys/discovery/" + registrytest.RandomToken(t)}
			reg, err := etcdv2.New(tok.url, agent.Access{})
			testenv.Must(t, err, "registry")
			testenv.Must(t, reg.Create(t.Context(), size, 0), "create the token")
			return tok
		},
		GoodSizes: map[string]int{"3": 3, "1": 1, "007": 7},
		BadSizes:  []string{"+1", " 3", "3 ", "0", "-1", "abc", "", "3.0"},
	})
}

type v2Token struct {
	top testing.TB // the test that started the registry, and restarts it
	m   *testenv.Etcd
	url string
}

func (tok *v2Token) Open(t *testing.T) agent.Registry {
	reg, err := etcdv2.New(tok.url, agent.Access{})
	testenv.Must(t, err, "registry")
	return reg
}

func (tok *v2Token) PutRaw(t *testing.T, key, value string) { testenv.PutV2(t, tok.url+"/"+key, value) }
func (tok *v2Token) PutSize(t *testing.T, value string) {
	testenv.PutV2(t, tok.url+"/_config/size", value)
}

func (tok *v2Token) Restart(t *testing.T) {
	tok.m.Process = tok.m.Process.Restart(tok.top)
	tok.m.WaitHealthy(t, 30*time.Second)
}

// LoseHistory writes more than the 1000 events etcd's v2 store keeps.
func (tok *v2Token) LoseHistory(t *testing.T) {
	for i := range 1010 {
		testenv.PutV2(t, tok.m.ClientURL+"/v2/keys/flood/x", strings.Repeat("x", i%7))
	}
}
