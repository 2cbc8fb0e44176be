//go:build slurmtest

package slurm_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"
)

// cluster is a one-machine Slurm cluster of this test's own: munged,
// slurmctld and slurmd, started in the foreground as children and stopped
// by their PIDs.
type cluster struct {
	dir   string
	conf  string
	procs []*exec.Cmd
}

var slurmConf = template.Must(template.New("slurm.conf").Parse(`ClusterName=machsendtest
SlurmctldHost={{.Host}}(127.0.0.1)
SlurmctldPort={{.CtlPort}}
SlurmdPort={{.DPort}}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={{.Dir}}/munge.sock
CredType=cred/munge
StateSaveLocation={{.Dir}}/state
SlurmdSpoolDir={{.Dir}}/spool
SlurmctldPidFile={{.Dir}}/slurmctld.pid
SlurmdPidFile={{.Dir}}/slurmd.pid
SlurmctldLogFile={{.Dir}}/slurmctld.log
SlurmdLogFile={{.Dir}}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
NodeName={{.Host}} NodeAddr=127.0.0.1 CPUs={{.CPUs}} State=UNKNOWN
PartitionName=lab Nodes={{.Host}} Default=YES MaxTime=INFINITE State=UP
`))

// freePort is a TCP port on loopback nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startCluster starts the three daemons and waits until the node is idle.
func startCluster(t *testing.T, cpus int) *cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "nl-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"state", "spool"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 1024)
	_, _ = rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "munge.key"), key, 0o400); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	var conf bytes.Buffer
	_ = slurmConf.Execute(&conf, map[string]any{"Host": host, "Dir": dir, "CtlPort": freePort(t), "DPort": freePort(t), "CPUs": cpus})
	c := &cluster{dir: dir, conf: filepath.Join(dir, "slurm.conf")}
	if err := os.WriteFile(c.conf, conf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop(t) })
	c.start(t, "munged", "--foreground", "--force", "--socket="+filepath.Join(dir, "munge.sock"),
		"--key-file="+filepath.Join(dir, "munge.key"), "--pid-file="+filepath.Join(dir, "munged.pid"),
		"--log-file="+filepath.Join(dir, "munged.log"), "--seed-file="+filepath.Join(dir, "munged.seed"))
	c.waitFor(t, "munge socket", func() bool { _, err := os.Stat(filepath.Join(dir, "munge.sock")); return err == nil })
	c.start(t, "slurmctld", "-D", "-i", "-f", c.conf)
	c.start(t, "slurmd", "-D", "-f", c.conf)
	c.waitFor(t, "an idle node", func() bool {
		out, err := c.cmd("sinfo", "-h", "-o", "%t").Output()
		return err == nil && strings.TrimSpace(string(out)) == "idle"
	})
	return c
}

func (c *cluster) start(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+c.conf)
	log, err := os.Create(filepath.Join(c.dir, name+".stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	c.procs = append(c.procs, cmd)
}

// cmd is a Slurm client command talking to this cluster.
func (c *cluster) cmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+c.conf)
	return cmd
}

func (c *cluster) waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("the cluster never had %s; logs:\n%s", what, c.logs())
}

func (c *cluster) logs() string {
	var b strings.Builder
	for _, f := range []string{"munged.stderr", "slurmctld.stderr", "slurmd.stderr", "slurmctld.log", "slurmd.log"} {
		data, _ := os.ReadFile(filepath.Join(c.dir, f))
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "== %s\n%s\n", f, data)
	}
	return b.String()
}

// stop ends the daemons this test started, newest first, by their PIDs,
// and removes the cluster's directory.
func (c *cluster) stop(t *testing.T) {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	if t.Failed() {
		t.Logf("cluster logs:\n%s", c.logs())
	}
	os.RemoveAll(c.dir)
}
