package rawtcp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/vishvananda/netlink"
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
			// A name is not an identity: anyone can bind-mount the root
			// namespace as nl-something. What makes a lab is what it is
			// built of: only loopback, veth and bridge links (no device
			// that leads out of the machine) and only lab addresses.
			if err := labLinksOnly(); err != nil {
				return err
			}
			return labAddressesOnly()
		}
	}
	return fmt.Errorf("%w: namespace inode %d is none of %s/%s*", ErrNotLab, self, NetnsDir, LabPrefix)
}

// labRanges are the only prefixes a lab namespace's interfaces may carry
// (besides loopback and IPv6 link-local).
var labRanges = []netip.Prefix{
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fc00::/7"),
}

// IsLabAddr reports whether a is an address a lab may use.
func IsLabAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range labRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// labLinkTypes are the kinds of link natlab builds a lab from.
var labLinkTypes = map[string]bool{"veth": true, "bridge": true}

// labLinksOnly checks that the calling thread's namespace holds nothing but
// loopback and the links natlab makes: a physical NIC, a tunnel or any other
// device could carry a crafted packet out of the lab.
func labLinksOnly() error {
	h, err := netlink.NewHandle() // opened in the calling thread's namespace
	if err != nil {
		return fmt.Errorf("%w: netlink: %v", ErrNotLab, err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("%w: list links: %v", ErrNotLab, err)
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || labLinkTypes[l.Type()] {
			continue
		}
		return fmt.Errorf("%w: this namespace has link %s of type %q, which natlab never creates", ErrNotLab, a.Name, l.Type())
	}
	return nil
}

// labAddressesOnly checks the calling thread's namespace: at least one lab
// address, and none outside the lab ranges.
func labAddressesOnly() error {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("%w: list addresses: %v", ErrNotLab, err)
	}
	lab := 0
	for _, ad := range addrs {
		pfx, err := netip.ParsePrefix(ad.String())
		if err != nil {
			return fmt.Errorf("%w: unreadable address %q", ErrNotLab, ad.String())
		}
		a := pfx.Addr()
		if !IsLabAddr(a) {
			return fmt.Errorf("%w: this namespace has the non-lab address %s", ErrNotLab, a)
		}
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() {
			lab++
		}
	}
	if lab == 0 {
		return fmt.Errorf("%w: this namespace has no lab address", ErrNotLab)
	}
	return nil
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
