package transfer

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// benchBytes is the file size of the transfer benchmarks.
const benchBytes = 256 << 20

// benchFile writes a random file of benchBytes into a temporary folder
// (in memory when /dev/shm exists, so the disk is not measured).
func benchFile(b *testing.B) (string, string) {
	b.Helper()
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "machsend-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	src := filepath.Join(dir, "src.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, benchBytes); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return dir, src
}

// BenchmarkAESCopy is the baseline: the same bytes through the same secure
// channel (AES-256-GCM records over loopback TCP), read from and written to
// memory files, with no protocol.
func BenchmarkAESCopy(b *testing.B) {
	dir, src := benchFile(b)
	b.SetBytes(benchBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, r, errA, errB := securePair(b, secret, secret, nil)
		if errA != nil || errB != nil {
			b.Fatal(errA, errB)
		}
		go func() {
			f, _ := os.Open(src)
			defer f.Close()
			_, _ = io.CopyBuffer(a, f, make([]byte, 1<<20))
			a.Close()
		}()
		out, err := os.Create(filepath.Join(dir, "copy.bin"))
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.CopyBuffer(out, r, make([]byte, 1<<20)); err != nil || n != benchBytes {
			b.Fatal(n, err)
		}
		out.Close()
		r.Close()
	}
}

// BenchmarkTransfer is Send and Receive of one file over the same channel,
// manifest included.
func BenchmarkTransfer(b *testing.B) { benchTransfer(b, ReceiveOptions{}) }

// BenchmarkTransferChecksum adds the SHA-256 of the file on both sides.
func BenchmarkTransferChecksum(b *testing.B) { benchTransfer(b, ReceiveOptions{Checksum: true}) }

func benchTransfer(b *testing.B, opts ReceiveOptions) {
	dir, src := benchFile(b)
	b.SetBytes(benchBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(dir, "out")
		os.RemoveAll(out)
		m, srcs, err := BuildManifest([]string{src})
		if err != nil {
			b.Fatal(err)
		}
		a, r, errA, errB := securePair(b, secret, secret, nil)
		if errA != nil || errB != nil {
			b.Fatal(errA, errB)
		}
		errc := make(chan error, 1)
		go func() { errc <- Send(context.Background(), a, m, srcs, nil); a.Close() }()
		opts.Dir = out
		if _, err := Receive(context.Background(), r, opts, nil); err != nil {
			b.Fatal(err)
		}
		r.Close()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}
