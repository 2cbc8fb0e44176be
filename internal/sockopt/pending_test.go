//go:build linux

package sockopt

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Pending tells a connect still in SYN_SENT from one refused or completed,
// on loopback: a listener whose accept queue is full drops SYNs, so a
// connect to it stays pending; a closed port refuses at once.
func TestPending(t *testing.T) {
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 0); err != nil { // an accept queue of one
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		t.Fatal(err)
	}
	full := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	local := netip.MustParseAddrPort("127.0.0.1:0")
	var socks []*RawSocket
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	connect := func(to netip.AddrPort) *RawSocket {
		s, err := NewRawSocket(local, 0)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, s)
		if err := s.Connect(to); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Fill the accept queue (nobody accepts), then one more connect.
	for i := 0; i < 1; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := connect(full).Wait(ctx) // backlog 0 holds one
		cancel()
		if err != nil {
			t.Fatalf("filling the accept queue: %v", err)
		}
	}
	completed := socks[0]
	waiting := connect(full)
	closed := connect(netip.MustParseAddrPort("127.0.0.1:1"))
	time.Sleep(100 * time.Millisecond)
	for _, c := range []struct {
		name string
		s    *RawSocket
		want bool
	}{{"completed", completed, false}, {"dropped by a full queue", waiting, true}, {"refused", closed, false}} {
		if got := c.s.Pending(); got != c.want {
			t.Errorf("%s: pending %v, want %v", c.name, got, c.want)
		}
	}
	if closed.Err() == nil {
		t.Error("the refused connect reports no error after Pending looked at it")
	}
}
