package sockopt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// Outcome names every failure the attempt events and reports use, through
// wrapping; a mechanism this OS lacks is "not applicable", not an error.
func TestOutcome(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "connected"},
		{fmt.Errorf("dial: %w", sockErrs[Refused][0]), "refused"},
		{fmt.Errorf("read: %w", sockErrs[Reset][0]), "reset"},
		{sockErrs[Unreachable][0], "unreachable"},
		{sockErrs[Unreachable][1], "unreachable"},
		{sockErrs[AddrInUse][0], "address-in-use"},
		{sockErrs[AddrNotAvail][0], "address-in-use"},
		{os.ErrDeadlineExceeded, "timeout"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{fmt.Errorf("socket: %w", ErrNotSupported), ProbeNotApplicable},
		{errors.New("something else"), "error"},
	} {
		if got := Outcome(c.err); got != c.want {
			t.Errorf("Outcome(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// The system's own errors, from real sockets on loopback, land in their
// classes: a connect to a closed port is refused, and a read from a
// connection the peer aborted is reset (on Windows these are Winsock's
// numbers, which syscall.ECONNREFUSED does not match).
func TestOutcomeOfRealSockets(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, err = net.DialTimeout("tcp4", closed, 5*time.Second)
	if got := Outcome(err); got != "refused" || !Refused.Is(err) {
		t.Errorf("dial to a closed port: %v is %q, want refused", err, got)
	}

	if Refused.Is(nil) || ErrClass(99).Is(err) {
		t.Error("nil, or an unknown class, matched")
	}
	if runtime.GOOS == "windows" {
		// Wine 8.0, where make test runs the Windows build, closes a
		// socket that lingers 0 s with a FIN (the read sees EOF), so the
		// reset half says nothing about Windows there.
		return
	}
	ln, err = net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = s.(*net.TCPConn).SetLinger(0) // close with a RST
	s.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if got := Outcome(err); got != "reset" || !Reset.Is(err) {
		t.Errorf("read from an aborted connection: %v is %q, want reset", err, got)
	}
}
