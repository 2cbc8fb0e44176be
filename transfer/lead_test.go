package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestLeadComesBeforeTheRequest reads what a sender writes before it has
// any request: the manifest announces a lead, and the lead chunk (the
// first bytes of the first file with data) follows it.
func TestLeadComesBeforeTheRequest(t *testing.T) {
	src := t.TempDir()
	empty, data := filepath.Join(src, "empty"), filepath.Join(src, "data")
	content := random(3 * MaxLead)
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(data, content, 0o644); err != nil {
		t.Fatal(err)
	}
	m, srcs, err := BuildManifest([]string{empty, data})
	if err != nil {
		t.Fatal(err)
	}
	a, b, errA, errB := securePair(t, secret, secret, nil)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	defer a.Close()
	defer b.Close()
	go Send(context.Background(), a, m, srcs, nil)
	got, err := readManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Lead == nil || got.Lead.Index != 1 || got.Lead.Size != MaxLead {
		t.Fatalf("lead %+v, want entry 1, %d bytes", got.Lead, MaxLead)
	}
	fr, _, err := readFrame(b, MaxLead, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseChunk(fr.payload)
	if err != nil || fr.typ != frameChunk || c.index != 1 || c.offset != 0 || !bytes.Equal(c.data, content[:MaxLead]) {
		t.Fatalf("after the manifest: %q frame, chunk %d at %d (%d bytes), %v", fr.typ, c.index, c.offset, len(c.data), err)
	}
	if m.Lead != nil {
		t.Error("Send changed the caller's manifest")
	}
}

// TestLeadTakenOrDropped runs transfers in which the receiver takes the
// lead (a fresh fetch, with and without checksums) and in which it must
// drop it (resuming the lead's file, or not selecting it); every file
// arrives whole and the bytes counted sent add up.
func TestLeadTakenOrDropped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   ReceiveOptions
		resume bool
	}{
		{"fresh", ReceiveOptions{}, false},
		{"fresh with checksums", ReceiveOptions{Checksum: true}, false},
		{"resuming", ReceiveOptions{}, true},
		{"resuming with checksums", ReceiveOptions{Checksum: true}, true},
		{"lead file not selected", ReceiveOptions{Select: func(e Entry) bool { return filepath.Base(e.Path) != "a.txt" }}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			paths := tree(t, src, 5*MinChunk+99)
			if tc.resume { // the lead's file is the one resumed
				big := filepath.Join(src, "big")
				if err := os.WriteFile(big, random(8*MinChunk+5), 0o644); err != nil {
					t.Fatal(err)
				}
				paths = []string{big}
				r1 := transferOnce(t, paths, dst, tc.opts, func(c net.Conn) net.Conn { return &cutConn{Conn: c, limit: int64(4 * MinChunk)} })
				if r1.recvErr == nil {
					t.Fatal("the interrupted run succeeded")
				}
			}
			r := transferOnce(t, paths, dst, tc.opts, nil)
			if r.sendErr != nil || r.recvErr != nil {
				t.Fatal(r.sendErr, r.recvErr)
			}
			if r.m.Lead == nil {
				t.Fatal("no lead offered")
			}
			switch {
			case tc.resume:
				sameFile(t, paths[0], filepath.Join(dst, "big"))
				if r.resumed == 0 || r.sent+r.resumed != r.m.Total() {
					t.Errorf("resuming: sent %d, resumed %d, total %d", r.sent, r.resumed, r.m.Total())
				}
			case tc.opts.Select != nil:
				sameFile(t, filepath.Join(src, "share/sub/deeper/b.bin"), filepath.Join(dst, "share/sub/deeper/b.bin"))
				if _, err := os.Stat(filepath.Join(dst, "share/a.txt")); err == nil {
					t.Error("the unselected lead file was written")
				}
			default:
				sameTree(t, paths[0], dst)
				if r.sent != r.m.Total() || r.resumed != 0 {
					t.Errorf("sent %d, resumed %d, total %d", r.sent, r.resumed, r.m.Total())
				}
			}
		})
	}
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil || !bytes.Equal(x, y) {
		t.Errorf("%s differs from %s (%v)", b, a, err)
	}
}

// TestLeadLies: a sender whose lead chunk is not the one its manifest
// announced is refused before anything is written.
func TestLeadLies(t *testing.T) {
	m := Manifest{Version: Version, ChunkSize: MinChunk, Files: []Entry{{Path: "a", Size: 100}, {Path: "b", Size: 100}}, Lead: &Lead{Index: 1, Size: 10}}
	mb, _ := json.Marshal(m)
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"other entry", leadFrame(0, 0, 10)},
		{"other offset", leadFrame(1, 5, 10)},
		{"other size", leadFrame(1, 0, 11)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, errA, errB := securePair(t, secret, secret, nil)
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			defer a.Close()
			go func() {
				writeFrame(a, frameManifest, mb)
				a.Write(tc.frame)
				io.Copy(io.Discard, a)
			}()
			dst := t.TempDir()
			// The receiver wants only entry "a": the lead (of "b") must be dropped.
			_, err := Receive(context.Background(), b, ReceiveOptions{Dir: dst, Select: func(e Entry) bool { return e.Path == "a" }}, nil)
			if !errors.Is(err, ErrFrame) {
				t.Errorf("got %v, want ErrFrame", err)
			}
			if _, err := os.Stat(filepath.Join(dst, "a")); err == nil {
				t.Error("a file was written")
			}
		})
	}
}

func TestLeadValidated(t *testing.T) {
	for _, l := range []Lead{{Index: 2, Size: 1}, {Index: -1, Size: 1}, {Index: 0, Size: 0}, {Index: 0, Size: 101}, {Index: 1, Size: 1}, {Index: 0, Size: MaxLead + 1}} {
		m := Manifest{Version: Version, ChunkSize: MinChunk, Files: []Entry{{Path: "a", Size: 100 << 10}, {Path: "d", Dir: true}}, Lead: &l}
		if l.Index == 0 && l.Size == 101 {
			m.Files[0].Size = 100
		}
		if err := m.Validate(); !errors.Is(err, ErrManifest) {
			t.Errorf("lead %+v: %v, want ErrManifest", l, err)
		}
	}
}

func leadFrame(index uint32, off int64, n int) []byte {
	f := []byte{frameChunk, 0, 0, 0, byte(chunkHeader + n)}
	f = appendChunkHeader(f, index, off)
	return append(f, make([]byte, n)...)
}
