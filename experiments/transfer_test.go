package experiments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/natlab/natlabtest"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
)

func labPeers(t *testing.T, bin, topology string, extra []string, profiles ...string) *LabPeers {
	t.Helper()
	lab := natlabtest.New(t, topology, profiles...)
	p, err := StartRendezvous(context.Background(), lab, bin, 0, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// treeHashes maps every entry under root (relative path) to its SHA-256, or
// "dir" for directories.
func treeHashes(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if info.IsDir() {
			out[rel] = "dir"
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		out[rel] = hex.EncodeToString(h.Sum(nil)) + " " + info.Mode().Perm().String()
		return nil
	})
	return out
}

// makeTree makes a shared folder with a sparse file over 4 GiB, an empty
// file, an empty folder and small files.
func makeTree(t *testing.T, dir string, bigSize int64) string {
	t.Helper()
	root := filepath.Join(dir, "share")
	for _, d := range []string{"share/photos/2009", "share/empty-folder"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteRandomFile(filepath.Join(root, "photos/2009/a.jpg"), 3<<20+17, 7); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "empty.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(root, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse, with data at the start, the middle and the end.
	for _, off := range []int64{0, bigSize / 2, bigSize - 5} {
		big.WriteAt([]byte("hello"), off)
	}
	big.Close()
	return root
}

func waitOK(t *testing.T, r *Running, what string, timeout time.Duration) []session.Event {
	t.Helper()
	evs, err := r.Wait(timeout)
	if err != nil {
		var last []string
		for _, e := range evs {
			b, _ := json.Marshal(e)
			last = append(last, string(b))
		}
		if len(last) > 5 {
			last = last[len(last)-5:]
		}
		t.Fatalf("%s: %v; last events: %s", what, err, strings.Join(last, "\n"))
	}
	return evs
}

func pathOf(evs []session.Event) string {
	path := ""
	for _, e := range evs {
		if (e.Kind == session.KindConnected && path == "" || e.Kind == session.KindMoved) && e.Report != nil {
			path = e.Report.Path // the first path, or the one a relay-first transfer moved to
		}
	}
	return path
}

// A tree with a file over 4 GiB and an empty file arrives byte-identical
// through a punched path, a LAN path and the relay.
func TestTransferTreeEveryPath(t *testing.T) {
	natlabtest.RequireRoot(t)
	bigSize := int64(4<<30 + 12345)
	if testing.Short() {
		bigSize = 64 << 20
	}
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	src := makeTree(t, t.TempDir(), bigSize)
	want := treeHashes(t, src)
	tests := []struct {
		name, topology, method, path string
		profiles                     []string
		expect                       string // the expected path get announces
	}{
		{"punched", "two-nat", "p2pnat", "punched", []string{"port-restricted-cone"}, "both NATs look endpoint-independent: a direct connection by hole punching is expected"},
		{"lan", "same-lan", "lan", "lan", []string{"linux-default"}, ""},
		{"relay", "two-nat", "relay", "relay", []string{"symmetric-random"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := labPeers(t, bin, tt.topology, nil, tt.profiles...)
			dst := t.TempDir()
			snd, link, err := p.Send(p.A, []string{src}, "--method", tt.method)
			if err != nil {
				t.Fatal(err)
			}
			get, err := p.Get(p.B, link, dst, "--method", tt.method)
			if err != nil {
				t.Fatal(err)
			}
			evs := waitOK(t, get, "get", 10*time.Minute)
			waitOK(t, snd, "send", time.Minute)
			if got := pathOf(evs); got != tt.path {
				t.Errorf("path %q, want %q", got, tt.path)
			}
			// Both sides announced their NAT, and get the path to expect.
			var nat, expect string
			for _, e := range evs {
				switch {
				case e.Kind == session.KindNAT && e.NAT != nil:
					nat = string(e.NAT.Mapping)
				case e.Kind == session.KindStep && e.Step.Kind == "expect":
					expect = e.Step.Detail
				}
			}
			if nat == "" || (tt.expect != "" && expect != tt.expect) {
				t.Errorf("get announced NAT %q and expected path %q; want a NAT and %q", nat, expect, tt.expect)
			}
			got := treeHashes(t, filepath.Join(dst, "share"))
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: got %q, want %q", k, got[k], v)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d entries arrived, %d shared", len(got), len(want))
			}
		})
	}
}

// lastProgress returns the receiver's latest progress event.
func lastProgress(evs []session.Event) (p transfer.Progress) {
	for _, e := range evs {
		if e.Kind == session.KindProgress && e.Progress != nil {
			p = *e.Progress
		}
	}
	return p
}

// waitBytes waits until the receiver has verified at least n bytes.
func waitBytes(t *testing.T, r *Running, n int64) int64 {
	t.Helper()
	for i := 0; i < 600; i++ {
		if p := lastProgress(r.Events()); p.FileBytes >= n {
			return p.FileBytes
		}
		select {
		case <-r.Proc.Done():
			t.Fatalf("receiver ended before %d bytes", n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("receiver never reached %d bytes", n)
	return 0
}

// Kill the sender mid-file, then the receiver mid-file: each re-run of get
// continues from the last verified chunk, and the byte counts prove that
// nothing verified was sent again.
func TestResumeAfterKills(t *testing.T) {
	natlabtest.RequireRoot(t)
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	p := labPeers(t, bin, "two-nat", nil, "port-restricted-cone")
	// Slow the path so the kills land mid-file.
	for _, ifc := range []string{"wan-a", "wan-b"} {
		if err := p.Lab.Shape("core", ifc, 400e6); err != nil {
			t.Fatal(err)
		}
	}
	srcDir := t.TempDir()
	size := int64(256 << 20)
	if err := WriteRandomFile(filepath.Join(srcDir, "big.bin"), size, 3); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(srcDir, "big.bin")
	dst := t.TempDir()

	// 1. Kill the sender at about a quarter.
	snd, link, err := p.Send(p.A, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	get, err := p.Get(p.B, link, dst)
	if err != nil {
		t.Fatal(err)
	}
	waitBytes(t, get, size/4)
	snd.Proc.Kill()
	if _, err := get.Wait(30 * time.Second); err == nil {
		t.Fatal("get succeeded although the sender was killed")
	}
	if _, err := os.Stat(filepath.Join(dst, transfer.PartPath("big.bin"))); err != nil {
		t.Fatalf("no .part after the sender died: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "big.bin")); err == nil {
		t.Fatal("incomplete file renamed into place")
	}
	verified1 := verifiedOf(t, dst)

	// 2. A new sender (new link, same file): the receiver resumes; kill the
	// receiver at about three quarters.
	snd, link, err = p.Send(p.A, []string{src}, "--keep")
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Proc.Kill()
	get, err = p.Get(p.B, link, dst)
	if err != nil {
		t.Fatal(err)
	}
	waitBytes(t, get, 3*size/4)
	first := lastProgress(get.Events())
	get.Proc.Kill()
	get.Wait(10 * time.Second)
	if first.Resumed != verified1 {
		t.Errorf("second run resumed %d bytes, but %d were verified", first.Resumed, verified1)
	}
	verified2 := verifiedOf(t, dst)

	// 3. The receiver comes back on the same link and finishes.
	get, err = p.Get(p.B, link, dst)
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, get, "final get", 5*time.Minute)
	last := lastProgress(get.Events())
	if last.Resumed != verified2 || last.Sent+last.Resumed != size {
		t.Errorf("final run: sent %d + resumed %d != %d, or resumed < verified %d", last.Sent, last.Resumed, size, verified2)
	}
	got, want := treeHashes(t, dst)["big.bin"], treeHashes(t, srcDir)["big.bin"]
	if got != want {
		t.Errorf("resumed file differs: %s vs %s", got, want)
	}
	t.Logf("verified %d then %d of %d bytes; the last run sent %d and resumed %d", verified1, verified2, size, last.Sent, last.Resumed)
}

// verifiedOf reads how much of big.bin's part the receiver recorded as verified.
func verifiedOf(t *testing.T, dst string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dst, transfer.StatePath("big.bin")))
	if err != nil {
		t.Fatalf("no resume state: %v", err)
	}
	var st struct {
		Verified int64 `json:"verified"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Verified <= 0 {
		t.Fatalf("resume state %s: %v", b, err)
	}
	return st.Verified
}

// A middlebox (the relay, told to misbehave) flips one byte: the receiver
// detects it, aborts, keeps the .part and renames nothing.
func TestFlippedByteDetected(t *testing.T) {
	natlabtest.RequireRoot(t)
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	p := labPeers(t, bin, "two-nat", []string{"--fault-flip-byte", "3000000"}, "symmetric-random")
	srcDir := t.TempDir()
	if err := WriteRandomFile(filepath.Join(srcDir, "f.bin"), 16<<20, 4); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	snd, link, err := p.Send(p.A, []string{filepath.Join(srcDir, "f.bin")}, "--method", "relay")
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Proc.Kill()
	get, err := p.Get(p.B, link, dst, "--method", "relay")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get.Wait(time.Minute); err == nil {
		t.Fatal("transfer succeeded through a corrupting middlebox")
	}
	if _, err := os.Stat(filepath.Join(dst, transfer.PartPath("f.bin"))); err != nil {
		t.Errorf(".part not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "f.bin")); err == nil {
		t.Error("corrupted transfer renamed into place")
	}
}

// A --keep share serves two receivers behind a NAT at the same time
// through the sender's NAT: each starts on the relay and moves to a
// punched path of its own (neither ends relayed), both are connected
// before either finishes, and both files arrive byte-identical.
func TestKeepServesReceiversAtOnceThroughNATs(t *testing.T) {
	natlabtest.RequireRoot(t)
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	p := labPeers(t, bin, "two-nat", nil, "port-restricted-cone")
	for _, ifc := range []string{"wan-a", "wan-b"} { // long enough to overlap
		if err := p.Lab.Shape("core", ifc, 200e6); err != nil {
			t.Fatal(err)
		}
	}
	srcDir := t.TempDir()
	src := filepath.Join(srcDir, "f.bin")
	if err := WriteRandomFile(src, 48<<20, 7); err != nil {
		t.Fatal(err)
	}
	snd, link, err := p.Send(p.A, []string{src}, "--keep", "--at-once", "2")
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Proc.Kill()
	dsts := []string{t.TempDir(), t.TempDir()}
	var gets []*Running
	for _, dst := range dsts {
		g, err := p.Get(p.B, link, dst)
		if err != nil {
			t.Fatal(err)
		}
		gets = append(gets, g)
	}
	var connected, done []time.Time
	for i, g := range gets {
		evs := waitOK(t, g, fmt.Sprintf("get %d", i+1), 3*time.Minute)
		if path := pathOf(evs); path != "punched" {
			t.Errorf("receiver %d: path %q, want punched", i+1, path)
		}
		c, _ := session.First(evs, session.KindConnected)
		d, _ := session.First(evs, session.KindDone)
		connected, done = append(connected, c.Time), append(done, d.Time)
		if got, want := treeHashes(t, dsts[i])["f.bin"], treeHashes(t, srcDir)["f.bin"]; got != want {
			t.Errorf("receiver %d's file differs: %s vs %s", i+1, got, want)
		}
	}
	if last, first := slices.MaxFunc(connected, time.Time.Compare), slices.MinFunc(done, time.Time.Compare); !last.Before(first) {
		t.Errorf("the receivers did not overlap: connected at %v, done at %v", connected, done)
	}
	numbered := map[int]bool{}
	for _, e := range snd.Events() {
		if e.Kind == session.KindDone {
			numbered[e.Receiver] = true
		}
	}
	if !numbered[1] || !numbered[2] {
		t.Errorf("the sender's done events name receivers %v, want 1 and 2", numbered)
	}
}
