package rawtcp

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Injector sends crafted IPv4 packets (header included) through an
// IPPROTO_RAW socket opened inside a lab namespace.
type Injector struct {
	fd   int
	sent atomic.Int64
}

// NewInjector opens the raw socket; it refuses with ErrNotLab outside a lab
// namespace and ErrPrivilege without CAP_NET_RAW.
func NewInjector() (*Injector, error) {
	inj := &Injector{fd: -1}
	err := withLabThread(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return privErr("raw socket", err)
		}
		inj.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	return inj, nil
}

// Send injects one packet built by SYNACK (or any IPv4 packet) toward dst.
func (i *Injector) Send(pkt []byte, dst netip.Addr) error {
	if !dst.Is4() {
		return fmt.Errorf("%w: IPv4 destination only", ErrPacket)
	}
	if err := unix.Sendto(i.fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
		return fmt.Errorf("inject to %s: %w", dst, err)
	}
	i.sent.Add(1)
	return nil
}

// Sent is how many packets were injected.
func (i *Injector) Sent() int64 { return i.sent.Load() }

// Close closes the socket.
func (i *Injector) Close() error {
	if i.fd < 0 {
		return nil
	}
	err := unix.Close(i.fd)
	i.fd = -1
	return err
}
