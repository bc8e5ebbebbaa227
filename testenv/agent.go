package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/envfile"
)

// AgentArgs are the bootstrap flags that put the agent's files for host h
// under h.Dir and advertise h's loopback address.
func AgentArgs(h Host, discovery string, extra ...string) []string {
	return append([]string{
		"bootstrap",
		"--name", h.Name,
		"--discovery", discovery,
		"--advertise-address", h.Addr.String(),
		"--data-dir", h.DataDir(),
		"--env-file", h.EnvFile(),
		"--state-dir", h.StateDir(),
	}, extra...)
}

// StartAgent runs the agent's bootstrap for host h.
func StartAgent(t testing.TB, agentBin string, h Host, discovery string, extra ...string) *Process {
	t.Helper()
	return Start(t, "agent-"+h.Name, agentBin, AgentArgs(h, discovery, extra...), nil)
}

// StartHost runs what systemd runs for host h: the agent as ExecStartPre
// and, if it succeeds, etcd from the env file it wrote, in one process
// whose PID ends up being etcd's.
func StartHost(t testing.TB, agentBin string, h Host, discovery string, extra ...string) *Process {
	t.Helper()
	return StartHostWithEtcd(t, agentBin, EtcdBinary(t), h, discovery, extra...)
}

// StartHostWithEtcd is StartHost with a given etcd binary.
func StartHostWithEtcd(t testing.TB, agentBin, etcdBin string, h Host, discovery string, extra ...string) *Process {
	t.Helper()
	return StartHostArgs(t, agentBin, etcdBin, h, AgentArgs(h, discovery, extra...)...)
}

// StartHostArgs is StartHost with the agent's whole argument list (for SRV
// mode, which has no token) and a given etcd binary.
func StartHostArgs(t testing.TB, agentBin, etcdBin string, h Host, agentArgs ...string) *Process {
	t.Helper()
	return StartHostEtcdArgs(t, agentBin, etcdBin, h, nil, agentArgs)
}

// StartHostEtcdArgs is StartHostArgs with flags for etcd beside its env
// file, such as its TLS files (etcd takes those from the operator, not from
// the agent). The flags must not contain white space.
func StartHostEtcdArgs(t testing.TB, agentBin, etcdBin string, h Host, etcdArgs, agentArgs []string) *Process {
	t.Helper()
	args, env := hostCommand(setprivBinary(t), agentBin, etcdBin, h.EnvFile(), agentArgs)
	if len(etcdArgs) > 0 {
		env = append(env, "ETCD_ARGS="+strings.Join(etcdArgs, " "))
	}
	return Start(t, "host-"+h.Name, "/bin/sh", args, env)
}

// StartNetHost runs the agent with agentArgs and then etcdBin from the env
// file inside h's namespace, as StartHost does on loopback.
func StartNetHost(t testing.TB, agentBin, etcdBin string, h NetHost, agentArgs ...string) *Process {
	t.Helper()
	args, env := hostCommand(setprivBinary(t), agentBin, etcdBin, h.EnvFile(), agentArgs)
	return h.Start(t, "host-"+h.Name, "/bin/sh", args, env)
}

// hostCommand is sh's arguments and environment for what etcd's unit runs:
// the agent's bootstrap (ExecStartPre), etcd from its env file
// (ExecStart), then the agent's promote with the same flags
// (ExecStartPost; a voter is left alone). A failing promote stops etcd, as
// systemd stops a unit whose ExecStartPost fails; SIGTERM stops etcd.
// sh gets its parent-death signal from Start, but the agent and etcd are
// its children: setpriv gives each its own (SIGKILL when sh dies) before
// it execs them, so a killed test leaves nothing behind.
func hostCommand(setpriv, agentBin, etcdBin, envFile string, agentArgs []string) (args, env []string) {
	script := `"$SETPRIV" --pdeathsig KILL -- "$AGENT" "$@" || exit $?
set -a; . "$ENV_FILE"; set +a
"$SETPRIV" --pdeathsig KILL -- "$ETCD" $ETCD_ARGS & etcd=$!
shift
"$SETPRIV" --pdeathsig KILL -- "$AGENT" promote "$@" & promote=$!
trap 'kill -TERM $etcd $promote 2>/dev/null; wait $etcd; exit 143' TERM INT
if ! wait $promote; then kill -TERM $etcd; wait $etcd; exit 9; fi
wait $etcd`
	return append([]string{"-c", script, "sh"}, agentArgs...),
		[]string{"SETPRIV=" + setpriv, "AGENT=" + agentBin, "ENV_FILE=" + envFile, "ETCD=" + etcdBin}
}

// setprivBinary returns util-linux's setpriv (--pdeathsig needs 2.33 or
// later), skipping the test when there is none.
func setprivBinary(t testing.TB) string {
	t.Helper()
	return binary(t, "SETPRIV_BIN", "/usr/bin/setpriv", "util-linux")
}

// ReadEnvFile parses an env file strictly (the safe subset) into a map.
func ReadEnvFile(t testing.TB, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read env file: %v", err)
	}
	m, err := ParseEnv(b)
	if err != nil {
		t.Fatalf("env file %s is not in the safe subset: %v\n%s", path, err, b)
	}
	return m
}

// ParseEnv parses env file text strictly (the safe subset) into a map.
func ParseEnv(data []byte) (map[string]string, error) {
	vars, err := envfile.Parse(data)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(vars))
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return m, nil
}

// Must fails the test on err.
func Must(t testing.TB, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}
