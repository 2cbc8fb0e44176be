package transfer

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// interrupted leaves a part of share/sub/deeper/b.bin in dst (a receive
// cut halfway) and returns the source file's path.
func interrupted(t *testing.T, src, dst string, big int) (string, []string) {
	t.Helper()
	paths := tree(t, src, big)
	r := transferOnce(t, paths, dst, ReceiveOptions{}, func(c net.Conn) net.Conn { return &cutConn{Conn: c, limit: int64(big / 2)} })
	if r.recvErr == nil {
		t.Fatal("interrupted transfer reported success")
	}
	if st, err := os.Stat(filepath.Join(dst, PartPath("share/sub/deeper/b.bin"))); err != nil || st.Size() == 0 {
		t.Fatalf("no part left: %v", err)
	}
	return filepath.Join(src, "share/sub/deeper/b.bin"), paths
}

// A source rewritten between two runs with its size and modification time
// kept (so the part's recorded version still matches) does not start with
// the bytes the part holds: the sender sees the prefix's hash differ and
// sends the file whole, and the receiver ends with the new file, not a mix.
func TestResumeFromChangedSourceRestarts(t *testing.T) {
	for _, checksum := range []bool{false, true} {
		src, dst := t.TempDir(), t.TempDir()
		big := 20*MinChunk + 777
		file, paths := interrupted(t, src, dst, big)
		st, _ := os.Stat(file)
		fresh := make([]byte, big)
		rand.Read(fresh)
		if err := os.WriteFile(file, fresh, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, time.Now(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
		r := transferOnce(t, paths, dst, ReceiveOptions{Checksum: checksum}, nil)
		if r.recvErr != nil || r.sendErr != nil {
			t.Fatalf("checksum %v: %v, %v", checksum, r.recvErr, r.sendErr)
		}
		sameTree(t, paths[0], dst)
		if r.resumed != 0 {
			t.Errorf("checksum %v: %d bytes counted as resumed from a part the source no longer matches", checksum, r.resumed)
		}
	}
}

// With a checksum, the receiver reports each file's SHA-256, which is the
// file's sha256sum on both sides, for resumed files too.
func TestChecksumReported(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	big := 20*MinChunk + 777
	file, paths := interrupted(t, src, dst, big)
	r := transferOnce(t, paths, dst, ReceiveOptions{Checksum: true}, nil)
	if r.recvErr != nil || r.sendErr != nil {
		t.Fatal(r.recvErr, r.sendErr)
	}
	if r.resumed == 0 {
		t.Error("nothing resumed")
	}
	b, _ := os.ReadFile(file)
	want := sha256.Sum256(b)
	seen := false
	for _, p := range r.progress {
		if p.Kind == "file-done" && p.File == "share/sub/deeper/b.bin" {
			seen = true
			if p.SHA256 != hex.EncodeToString(want[:]) {
				t.Errorf("reported %s, sha256sum says %x", p.SHA256, want)
			}
		}
	}
	if !seen {
		t.Error("no file-done for the resumed file")
	}
}

// A file that changes after it was shared is not sent: the receiver is
// told in words, and nothing is renamed into place.
func TestSourceChangedAfterSharing(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	paths := tree(t, src, 3*MinChunk)
	m, srcs, err := BuildManifest(paths)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(src, "share/sub/deeper/b.bin")
	if err := os.WriteFile(file, []byte("something else"), 0o640); err != nil {
		t.Fatal(err)
	}
	a, b, errA, errB := securePair(t, secret, secret, nil)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- Send(t.Context(), a, m, srcs, nil) }()
	_, recvErr := Receive(t.Context(), b, ReceiveOptions{Dir: dst}, nil)
	if !errors.Is(recvErr, ErrRemote) {
		t.Errorf("receiver: %v, want the sender's report", recvErr)
	}
	if err := <-sendErr; !errors.Is(err, ErrChanged) {
		t.Errorf("sender: %v, want ErrChanged", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "share/sub/deeper/b.bin")); err == nil {
		t.Error("a file that changed on the sender was renamed into place")
	}
}

// A manifest records each file's size and modification time, the version
// a resume and the quick check compare, for a 64 GiB sparse file too.
// (That building it reads no file is measured, not asserted here: the
// time to link for a 10 GiB file in results/ against a 1-byte file.)
func TestManifestRecordsVersion(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "huge.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 30); err != nil {
		t.Skipf("this file system has no sparse files: %v", err)
	}
	f.Close()
	m, _, err := BuildManifest([]string{p})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 1 || m.Files[0].Size != 64<<30 || m.Files[0].MTime == 0 {
		t.Errorf("manifest %+v", m.Files)
	}
}

// The chunks of a file start at firstChunk and double up to the chunk size,
// and together they cover the file exactly, from any starting offset.
func TestChunkRamp(t *testing.T) {
	for _, c := range []struct {
		max  int
		size int64
		want []int
	}{
		{1 << 20, 100 << 10, []int{16 << 10, 32 << 10, 52 << 10}},
		{64 << 10, 300 << 10, []int{16 << 10, 32 << 10, 64 << 10, 64 << 10, 64 << 10, 60 << 10}},
		{1 << 20, 3 << 20, []int{16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 1 << 20, 16 << 10}},
	} {
		var got []int
		for sent := int64(0); sent < c.size; {
			n := int(min(int64(chunkAt(c.max, sent)), c.size-sent))
			got = append(got, n)
			sent += int64(n)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("max %d, size %d: chunks %v, want %v", c.max, c.size, got, c.want)
		}
	}
}
