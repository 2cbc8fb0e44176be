//go:build unix

package transfer

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A folder of 50,000 small files arrives whole with at most 256 open
// descriptors: parts are opened one at a time, as their bytes arrive.
func TestFiftyThousandFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: writes 100,000 small files")
	}
	src, dst := t.TempDir(), t.TempDir()
	const n = 50000
	for i := 0; i < n; i++ {
		dir := filepath.Join(src, "share", fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	r := transferOnce(t, []string{filepath.Join(src, "share")}, dst, ReceiveOptions{}, nil)
	if r.recvErr != nil || r.sendErr != nil {
		t.Fatal(r.recvErr, r.sendErr)
	}
	for _, i := range []int{0, 4242, n - 1} {
		p := filepath.Join(dst, "share", fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d", i))
		if b, err := os.ReadFile(p); err != nil || string(b) != fmt.Sprint(i) {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, StateDir)); err == nil {
		t.Errorf("%s left behind", StateDir)
	}
}
