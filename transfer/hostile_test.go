package transfer

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fileSet writes files (path -> content) under root with mode 0644 unless
// given in modes.
func fileSet(t *testing.T, root string, files map[string][]byte, modes map[string]os.FileMode) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if m, ok := modes[p]; ok {
			if err := os.Chmod(full, m); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// What a sender names can never touch a file the receiver did not create
// in this transfer: the user's own "notes.part" and "notes.part.json" keep
// every byte when the share has "notes"; "x" and "x.part" in one share
// both arrive intact with --overwrite; a 255-byte name is received; a
// mode of 0777 arrives without the bits the receiver's umask withholds.
func TestHostileNamesChangeNothing(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	long := strings.Repeat("n", 255)
	shared := map[string][]byte{"share/notes": random(3 * MinChunk), "share/x": random(1000), "share/x.part": random(2000),
		"share/" + long: random(100), "share/run.sh": []byte("#!/bin/sh\n")}
	fileSet(t, src, shared, map[string]os.FileMode{"share/run.sh": 0o777})
	mine := map[string][]byte{"share/notes.part": random(100000), "share/notes.part.json": []byte(`{"mine":true}`)}
	fileSet(t, dst, mine, nil)
	r := transferOnce(t, []string{filepath.Join(src, "share")}, dst, ReceiveOptions{Overwrite: true}, nil)
	if r.recvErr != nil || r.sendErr != nil {
		t.Fatal(r.recvErr, r.sendErr)
	}
	for p, want := range mine {
		if got, err := os.ReadFile(filepath.Join(dst, p)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("the user's %s changed (err %v)", p, err)
		}
	}
	for p, want := range shared {
		if got, err := os.ReadFile(filepath.Join(dst, p)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s arrived wrong (err %v)", filepath.Base(p), err)
		}
	}
	st, err := os.Stat(filepath.Join(dst, "share/run.sh"))
	if err != nil || st.Mode().Perm() != 0o777&^umask() {
		t.Errorf("mode %v, want 0777 without the umask %o (err %v)", st.Mode().Perm(), umask(), err)
	}
	if _, err := os.Stat(filepath.Join(dst, StateDir)); err == nil {
		t.Errorf("%s left behind after a complete transfer", StateDir)
	}
}

// A planted symlink where the receiver keeps its parts is refused: nothing
// is written through it.
func TestStateDirSymlinkRefused(t *testing.T) {
	src, dst, elsewhere := t.TempDir(), t.TempDir(), t.TempDir()
	fileSet(t, src, map[string][]byte{"share/f": random(1000)}, nil)
	if err := os.Symlink(elsewhere, filepath.Join(dst, StateDir)); err != nil {
		t.Fatal(err)
	}
	r := transferOnce(t, []string{filepath.Join(src, "share")}, dst, ReceiveOptions{}, nil)
	if r.recvErr == nil {
		t.Fatal("received through a symlinked state folder")
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("%d files written through the symlink", len(ents))
	}
}

// No manifest entry may name the receiver's state folder.
func TestStateDirNotNameable(t *testing.T) {
	for _, p := range []string{StateDir + "/x", strings.ToUpper(StateDir) + "/y", StateDir} {
		if _, err := CleanPath(p); err == nil {
			t.Errorf("CleanPath(%q) accepted", p)
		}
	}
	if _, err := CleanPath("share/" + StateDir + "/fine"); err != nil {
		t.Errorf("a deeper folder of that name refused: %v", err)
	}
}

// Text from a peer cannot drive the terminal.
func TestPrintable(t *testing.T) {
	cases := map[string]string{
		"disk full":               "disk full",
		"\x1b[2J\x1b]0;pwned\x07": "?[2J?]0;pwned?",
		"bad\xffutf8":             "bad?utf8",
		"tab\there":               "tab?here",
	}
	for in, want := range cases {
		if got := Printable(in, 100); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Printable(strings.Repeat("a", 500), 10); got != strings.Repeat("a", 10)+"…" {
		t.Errorf("not cut: %q", got)
	}
}

// A receiver cannot have the sender read one file over and over, nor ask
// for what the manifest does not offer.
func TestSenderRefusesAbusiveRequests(t *testing.T) {
	m := &Manifest{Version: Version, ChunkSize: MinChunk, Files: []Entry{{Path: "a", Size: 3 * MinChunk}, {Path: "d", Dir: true}}}
	cases := []struct {
		name string
		req  request
		ok   bool
	}{
		{"whole", request{Files: []fileRequest{{Index: 0}}}, true},
		{"resumed", request{Files: []fileRequest{{Index: 0, Offset: MinChunk, Prefix: strings.Repeat("ab", 32)}}}, true},
		{"resumed without its prefix's hash", request{Files: []fileRequest{{Index: 0, Offset: MinChunk}}}, false},
		{"resumed with a short hash", request{Files: []fileRequest{{Index: 0, Offset: MinChunk, Prefix: "abcd"}}}, false},
		{"a hash with nothing resumed", request{Files: []fileRequest{{Index: 0, Prefix: strings.Repeat("ab", 32)}}}, false},
		{"twice", request{Files: []fileRequest{{Index: 0}, {Index: 0}}}, false},
		{"thousands", request{Files: slicesRepeat(fileRequest{Index: 0}, 5000)}, false},
		{"a folder", request{Files: []fileRequest{{Index: 1}}}, false},
		{"out of range", request{Files: []fileRequest{{Index: 7}}}, false},
		{"past the end", request{Files: []fileRequest{{Index: 0, Offset: 3*MinChunk + 1, Prefix: strings.Repeat("ab", 32)}}}, false},
		{"anywhere inside, with its hash", request{Files: []fileRequest{{Index: 0, Offset: 5, Prefix: strings.Repeat("ab", 32)}}}, true},
	}
	for _, c := range cases {
		s := &sender{m: m, started: map[int]bool{}}
		if err := s.checkRequest(c.req); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func slicesRepeat(r fileRequest, n int) []fileRequest {
	out := make([]fileRequest, n)
	for i := range out {
		out[i] = r
	}
	return out
}
