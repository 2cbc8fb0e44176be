//go:build linux

package rendezvous

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// TestRelayHoldsLittleOfAStalledStream: when the receiving half stops
// reading, the sending half can queue only about a megabyte between
// itself, the relay and the receiver (the relay's bounded socket buffers
// and the sender's bounded unsent queue), and every byte still arrives in
// order once the receiver reads again. A transfer that moves to a direct
// path leaves no more than that behind on the relay. With the kernel's
// autotuned buffers the relay alone takes many megabytes.
func TestRelayHoldsLittleOfAStalledStream(t *testing.T) {
	_, addr := startServer(t, Config{})
	for _, tc := range []struct {
		name string
		// joiner opens the joiner's relay half.
		joiner func(context.Context, RelayResult) (net.Conn, error)
	}{
		{"on the relay address", DialRelay},
		{"on the server's port", func(ctx context.Context, r RelayResult) (net.Conn, error) {
			return DialSpare(ctx, addr, time.Second).Relay(ctx, r)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ca, cb := relayPairVia(ctx, t, addr, tc.joiner)
			sent := fillUntilStalled(t, ca)
			const bound = 2 << 20
			t.Logf("the sender queued %d KiB before it stalled", sent>>10)
			if sent > bound {
				t.Errorf("the sender queued %d KiB before it stalled, want at most %d KiB", sent>>10, bound>>10)
			}
			ca.Close() // the relay forwards what it holds, then the end
			got, err := io.ReadAll(cb)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != sent || !bytes.Equal(got, pattern(0, sent)) {
				t.Fatalf("the receiver read %d bytes, want the %d sent, in order", len(got), sent)
			}
		})
	}
}

// relayPairVia opens a session's two relay halves, the sharer's on the
// relay address and the joiner's with joiner.
func relayPairVia(ctx context.Context, t *testing.T, addr netip.AddrPort, joiner func(context.Context, RelayResult) (net.Conn, error)) (sharer, joined net.Conn) {
	t.Helper()
	a, b := dial(t, addr), dial(t, addr)
	key, verifier := JoinProof([]byte("stall secret"))
	cr, err := a.Create(ctx, verifier)
	if err != nil {
		t.Fatal(err)
	}
	jr, err := b.Join(ctx, cr.Session, key)
	if err != nil || jr.Relay == nil {
		t.Fatalf("join: %v, relay %+v", err, jr.Relay)
	}
	ra, err := a.Relay(ctx, cr.Session)
	if err != nil {
		t.Fatal(err)
	}
	wait := dialRelayAsync(ctx, ra)
	cb, err := joiner(ctx, *jr.Relay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cb.Close() })
	ca, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	return ca, cb
}

// fillUntilStalled writes a counting pattern to c until a write makes no
// progress for half a second, and returns how many bytes c took.
func fillUntilStalled(t *testing.T, c net.Conn) int64 {
	t.Helper()
	var sent int64
	for sent < 64<<20 {
		chunk := pattern(sent, 64<<10)
		_ = c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Write(chunk)
		sent += int64(n)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			_ = c.SetWriteDeadline(time.Time{})
			return sent
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("64 MiB went in without a stall")
	return sent
}

// pattern is bytes off to off+n of a sequence that shows a byte out of
// place.
func pattern(off, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off + int64(i)) * 7 / 5)
	}
	return b
}
