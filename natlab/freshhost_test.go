package natlab_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/machsend/machsend/nat"

	"golang.org/x/sys/unix"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/natlabtest"
)

// TestFreshHostNetnsDir reproduces a host where /run/netns has never been a
// mount point (a private mount namespace with a fresh /run), brings a lab up
// there, runs `ip netns add` while it is up (which makes /run/netns a mount
// of itself if nobody did before), and requires the lab to close cleanly.
// Before natlab prepared /run/netns as iproute2 does, Close failed with
// "device or resource busy" and the namespaces leaked.
func TestFreshHostNetnsDir(t *testing.T) {
	natlabtest.RequireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestHelperFreshHost$", "-test.v")
	cmd.Env = append(os.Environ(), "NATLAB_HELPER_FRESH=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fresh-host: ok") {
		t.Fatalf("fresh-host helper: %v\n%s", err, out)
	}
}

// TestHelperFreshHost is not a test: TestFreshHostNetnsDir runs it in a child
// process that has its own mount namespace.
func TestHelperFreshHost(t *testing.T) {
	if os.Getenv("NATLAB_HELPER_FRESH") == "" {
		t.Skip("helper process only")
	}
	// Nothing mounted here may reach the host: stop propagation first.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("fresh /run: %v", err)
	}
	if _, err := os.Stat("/run/netns"); !os.IsNotExist(err) {
		t.Fatalf("/run/netns exists on the fresh /run: %v", err)
	}
	topo, err := natlab.LoadTopology("two-nat")
	if err != nil {
		t.Fatal(err)
	}
	p, err := nat.Load("full-cone")
	if err != nil {
		t.Fatal(err)
	}
	l, err := natlab.Up(context.Background(), natlab.Options{Topology: topo, Default: p})
	if err != nil {
		t.Fatal(err)
	}
	stray := natlab.NSPrefix + l.Name + "-stray"
	if out, err := exec.Command("ip", "netns", "add", stray).CombinedOutput(); err != nil {
		_ = l.Close()
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	if _, err := l.Conntrack("nat-a"); err != nil {
		t.Errorf("lab unusable after ip netns add: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("close after ip netns add: %v", err)
	}
	if out, err := exec.Command("ip", "netns", "del", stray).CombinedOutput(); err != nil {
		t.Errorf("ip netns del: %v: %s", err, out)
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		t.Errorf("left behind: /run/netns/%s", e.Name())
	}
	if !t.Failed() {
		t.Log("fresh-host: ok")
	}
}
