package experiments

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/natlab/natlabtest"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
)

// kill -9 at twenty random points of a 500 MB transfer, each time the
// receiver, the sender or both (a seeded choice, so a failure replays):
// after every kill nothing is renamed into place, the resume state never
// goes back, every restart resumes from exactly what the state vouched
// for, and the file that finally arrives is byte-identical.
func TestKillNineTwentyTimes(t *testing.T) {
	natlabtest.RequireRoot(t)
	if testing.Short() {
		t.Skip("-short: twenty kills of a 500 MB transfer take about a minute")
	}
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	p := labPeers(t, bin, "two-nat", nil, "port-restricted-cone")
	// Shape the path so that the kills land mid-file.
	for _, ifc := range []string{"wan-a", "wan-b"} {
		if err := p.Lab.Shape("core", ifc, 800e6); err != nil {
			t.Fatal(err)
		}
	}
	const size, kills = int64(500 << 20), 20
	srcDir, dst := t.TempDir(), t.TempDir()
	src := filepath.Join(srcDir, "big.bin")
	if err := WriteRandomFile(src, size, 9); err != nil {
		t.Fatal(err)
	}
	send := func() (*Running, string) {
		snd, link, err := p.Send(p.A, []string{src}, "--keep")
		if err != nil {
			t.Fatal(err)
		}
		return snd, link
	}
	get := func(link string) *Running {
		g, err := p.Get(p.B, link, dst)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	snd, link := send()
	defer func() { snd.Proc.Kill() }()
	g := get(link)
	rng := rand.New(rand.NewPCG(2026, 12))
	var log []string
	var verified int64 // what the receiver's state vouched for at the last kill
	for k := range kills {
		if k > 0 {
			waitFor(t, g, verified+1)
			if r := lastProgress(g.Events()).Resumed; r != verified {
				t.Fatalf("after kill %d the receiver resumed from %d bytes, but its state vouched for %d", k, r, verified)
			}
		}
		at := lastProgress(g.Events()).FileBytes
		step := (size - at) / int64(kills-k+1)
		target := at + 1<<20 + rng.Int64N(max(step, 1))
		waitFor(t, g, target)
		who := []string{"receiver", "sender", "both"}[rng.IntN(3)]
		log = append(log, who)
		if who != "sender" {
			g.Proc.Kill()
		}
		if who != "receiver" {
			snd.Proc.Kill()
			snd.Wait(10 * time.Second)
		}
		if _, err := g.Wait(30 * time.Second); err == nil {
			t.Fatalf("kill %d (%s): get succeeded", k+1, who)
		}
		if _, err := os.Stat(filepath.Join(dst, "big.bin")); err == nil {
			t.Fatalf("kill %d (%s): an incomplete file was renamed into place", k+1, who)
		}
		v := verifiedState(t, dst)
		if v < verified {
			t.Fatalf("kill %d (%s): the state went back from %d to %d verified bytes", k+1, who, verified, v)
		}
		verified = v
		if who != "receiver" {
			snd, link = send()
		}
		g = get(link)
	}
	waitOK(t, g, "the final get", 5*time.Minute)
	if got, want := treeHashes(t, dst)["big.bin"], treeHashes(t, srcDir)["big.bin"]; got != want {
		t.Fatalf("after %d kills (%v) the file differs: %s vs %s", kills, log, got, want)
	}
	t.Logf("%d kills: %v; the last get resumed %d bytes", kills, log, lastProgress(g.Events()).Resumed)
}

// waitFor waits until the receiver has verified at least n bytes, for as
// long as a restart may take on a busy machine (a new session probes the
// NATs and punches again before the first byte).
func waitFor(t *testing.T, r *Running, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for lastProgress(r.Events()).FileBytes < n {
		select {
		case <-r.Proc.Done():
			t.Fatalf("receiver ended before %d bytes", n)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver did not reach %d bytes within a minute; its events: %s", n, eventTrail(r.Events()))
		}
	}
}

// verifiedState reads how many bytes of big.bin the receiver's resume state
// vouches for (0 before its first checkpoint).
func verifiedState(t *testing.T, dst string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dst, transfer.StatePath("big.bin")))
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	var st struct {
		Verified int64 `json:"verified"`
	}
	if err != nil || json.Unmarshal(b, &st) != nil {
		t.Fatalf("resume state %q: %v", b, err)
	}
	return st.Verified
}

// eventTrail is a receiver's events in short, for a failure message.
func eventTrail(evs []session.Event) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Kind == session.KindProgress {
			continue
		}
		line := e.Text()
		if e.Step != nil {
			line = fmt.Sprintf("%s %s %s", e.Step.Kind, e.Step.Attempt, e.Step.Detail)
		}
		fmt.Fprintf(&b, "\n  %s %s %s", e.Time.Format("15:04:05.000"), e.Kind, line)
	}
	return b.String()
}
