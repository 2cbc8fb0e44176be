//go:build linux

package sockopt

import (
	"io"
	"net"
	"testing"
	"time"
)

// RTT reads the kernel's smoothed round trip of a TCP connection that has
// exchanged data (tiny on loopback, never zero or negative), and says it
// does not know for something that is not TCP.
func TestRTT(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4)
	for i := 0; i < 3; i++ {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	rtt, ok := RTT(c)
	if !ok || rtt <= 0 || rtt > time.Second {
		t.Errorf("loopback RTT %v (ok %v)", rtt, ok)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := RTT(a); ok {
		t.Error("a pipe has an RTT")
	}
}
