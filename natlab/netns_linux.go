package natlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsDir is where named network namespaces are bind-mounted (as iproute2 does).
const nsDir = "/run/netns"

// Do runs fn on a fresh OS thread that has joined the network namespace ns,
// then returns the thread to its original namespace. Sockets opened inside fn
// stay in ns for their whole life, so they can be used from any goroutine
// afterwards. If the thread cannot be restored it is left locked, and the Go
// runtime discards it when the goroutine ends.
func Do(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// nsDirMu serialises this process's set-up of nsDir; another process
// (iproute2 or a second natlab) doing the same at the same moment can at
// worst stack one more shared bind mount, which is harmless.
var nsDirMu sync.Mutex

// ensureNSDir makes nsDir what iproute2 makes it before its first
// namespace: a shared bind mount of itself. On a fresh host it is a plain
// directory; namespace files bind-mounted into it then would be hidden the
// moment anyone runs `ip netns add` (which mounts nsDir over itself), and
// could neither be unmounted nor removed. Making the mount first, exactly as
// iproute2 does, lets natlab and `ip netns` share the directory at any time.
func ensureNSDir() error {
	nsDirMu.Lock()
	defer nsDirMu.Unlock()
	if err := os.MkdirAll(nsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", nsDir, err)
	}
	bound := false
	for {
		err := unix.Mount("", nsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		// EINVAL: nsDir is not a mount point yet; make it one, once.
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s a shared mount: %w", nsDir, err)
		}
		if err := unix.Mount(nsDir, nsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s onto itself: %w", nsDir, err)
		}
		bound = true
	}
}

// newNamedNS creates a named network namespace without moving any
// long-lived thread into it.
func newNamedNS(name string) (netns.NsHandle, error) {
	if err := ensureNSDir(); err != nil {
		return netns.None(), err
	}
	type res struct {
		h   netns.NsHandle
		err error
	}
	c := make(chan res, 1)
	go func() {
		// This thread is never unlocked: after NewNamed it sits in the new
		// namespace, and the runtime throws it away when we return.
		runtime.LockOSThread()
		h, err := netns.NewNamed(name)
		c <- res{h, err}
	}()
	r := <-c
	if r.err != nil {
		return netns.None(), fmt.Errorf("create netns %s: %w", name, r.err)
	}
	return r.h, nil
}

// deleteNamedNS removes a named namespace; a missing one is not an error.
func deleteNamedNS(name string) error {
	err := netns.DeleteNamed(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// listLabNamespaces returns every named namespace carrying the lab prefix.
func listLabNamespaces() ([]string, error) {
	ents, err := os.ReadDir(nsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", nsDir, err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), NSPrefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// nsInode returns the inode identifying a named namespace.
func nsInode(name string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(nsDir, name), &st); err != nil {
		return 0, fmt.Errorf("stat netns %s: %w", name, err)
	}
	return st.Ino, nil
}

// writeSysctl writes a sysctl inside the namespace ns ("net/ipv4/ip_forward").
func writeSysctl(ns netns.NsHandle, kv map[string]string) error {
	return Do(ns, func() error {
		for k, v := range kv {
			p := filepath.Join("/proc/sys", k)
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
			}
		}
		return nil
	})
}
