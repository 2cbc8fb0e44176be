package rawtcp

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// NetnsDir is where natlab mounts its named namespaces.
const NetnsDir = "/run/netns"

// LabPrefix is the name prefix of every natlab namespace.
const LabPrefix = "nl-"

func nsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// InLab reports (nil) whether the calling OS thread's network namespace is a
// natlab lab namespace: not the root namespace (that of PID 1) and the same
// namespace as one of /run/netns/nl-*. The caller should hold its OS thread
// (runtime.LockOSThread) from this check until the socket is made.
func InLab() error {
	self, err := nsInode("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotLab, err)
	}
	// PID 1's namespace may be unreadable (a container); the nl- match
	// below is the guard that matters, this only sharpens the message.
	if root, err := nsInode("/proc/1/ns/net"); err == nil && root == self {
		return fmt.Errorf("%w: this is the root network namespace", ErrNotLab)
	}
	names, _ := filepath.Glob(filepath.Join(NetnsDir, LabPrefix+"*"))
	for _, n := range names {
		if ino, err := nsInode(n); err == nil && ino == self {
			return nil
		}
	}
	return fmt.Errorf("%w: namespace inode %d is none of %s/%s*", ErrNotLab, self, NetnsDir, LabPrefix)
}

// withLabThread runs f on a locked OS thread after InLab succeeded there.
func withLabThread(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := InLab(); err != nil {
		return err
	}
	return f()
}

func privErr(op string, err error) error {
	if os.IsPermission(err) || err == syscall.EPERM || err == syscall.EACCES {
		return fmt.Errorf("%s: %w", op, ErrPrivilege)
	}
	return fmt.Errorf("%s: %w", op, err)
}
