package experiments_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/natlab/natlabtest"
)

func TestMain(m *testing.M) { os.Exit(natlabtest.LeakCheck(m.Run)) }

// The regression check: every knob once, every method, real binaries in
// real labs; any cell whose outcome disagrees with the NAT model fails.
// It also covers traversal's integration in the two-nat, same-lan,
// one-public and double-nat topologies.
func TestQuickMatrixAgreesWithModel(t *testing.T) {
	natlabtest.RequireRoot(t)
	if testing.Short() {
		t.Skip("-short: the quick matrix takes about half a minute")
	}
	sp, err := spec.LoadSpec("quick.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	start := time.Now()
	info, err := experiments.Run(context.Background(), sp, experiments.Options{Bin: buildtest.Commands(t, "machsend", "rendezvous"), Out: out,
		AttemptTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	trials, err := spec.LoadTrials(filepath.Join(out, spec.TrialsFile))
	if err != nil {
		t.Fatal(err)
	}
	cells, _ := sp.Cells()
	if len(trials) != len(cells) || info.Trials != len(cells) {
		t.Fatalf("%d trials for %d cells", len(trials), len(cells))
	}
	t.Logf("%d trials in %v", len(trials), time.Since(start))
	exemplar := map[string]bool{}
	for _, tr := range trials {
		exemplar[tr.Cell.Topology+tr.Cell.Method+tr.Class] = exemplar[tr.Cell.Topology+tr.Cell.Method+tr.Class] || len(tr.Pcaps) > 0
	}
	for k, ok := range exemplar {
		if !ok {
			t.Errorf("outcome %s kept no captures in any trial", k)
		}
	}
	for _, tr := range trials {
		if !tr.Agree {
			t.Errorf("%s: measured success=%v (%s: %v), model predicted %v: %s", tr.ID, tr.Success, tr.Class, tr.Explanation, tr.Predicted, tr.PredictedReason)
		}
		if tr.Class == "" {
			t.Errorf("%s: not classified", tr.ID)
		}
		if !tr.Modelled || tr.Delay == "" || len(tr.PathRTTms) == 0 {
			t.Errorf("%s: ran over %q (modelled %v, path probes %v); want the spec's path, measured", tr.ID, tr.Delay, tr.Modelled, tr.PathRTTms)
		}
		// The classifier never calls an ICMP dropped that the host's own
		// attempt reports receiving.
		if tr.Class == "icmp-dropped" {
			for _, a := range tr.Attempts {
				if strings.Contains(a.Error, "translated the ICMP time-exceeded") {
					t.Errorf("%s: classified icmp-dropped, but %s received the ICMP: %s", tr.ID, a.Attempt, a.Error)
				}
			}
		}
	}
}

// The impairment axis end to end: a peer-to-peer round trip of 160 ms is
// what machsend measures over the punched path, and cross traffic from a
// host beside A steals the port sequential prediction needs, while the
// same cell succeeds on a quiet network.
func TestImpairedMatrix(t *testing.T) {
	natlabtest.RequireRoot(t)
	if testing.Short() {
		t.Skip("-short: the impaired matrix takes about twenty seconds")
	}
	doc := `name: impaired
seed: 1
deadline: 30s
workers: 4
impairments:
  far: {rtt: 160ms, jitter: 1ms}
  busy: {cross: 100}
groups:
  - topology: two-nat
    methods: [p2pnat]
    pairs: [[port-restricted-cone, port-restricted-cone]]
    cases: [far]
  - topology: two-nat-cross
    methods: [sequential]
    pairs: [[symmetric-sequential, port-restricted-cone]]
    cases: [none, busy]
`
	sp, err := spec.ParseSpec("impaired.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := experiments.Run(context.Background(), sp, experiments.Options{Bin: buildtest.Commands(t, "machsend", "rendezvous"), Out: out,
		AttemptTimeout: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	trials, err := spec.LoadTrials(filepath.Join(out, spec.TrialsFile))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*spec.Trial{}
	for _, tr := range trials {
		if tr.LabError != "" {
			t.Fatalf("%s: lab error %s", tr.ID, tr.LabError)
		}
		got[tr.Cell.Topology+" "+tr.Cell.Case] = tr
		t.Logf("%s: success=%v class=%s connect=%.0f ms rtt=%v cross=%+v delay=%q", tr.ID, tr.Success, tr.Class, tr.ConnectMs, tr.RTTms, tr.Cross, tr.Delay)
	}
	far := got["two-nat far"]
	if far == nil || !far.Success {
		t.Fatalf("p2pnat at 160 ms did not connect: %+v", far)
	}
	for _, r := range far.RTTms {
		if r < 155 || r > 175 {
			t.Errorf("peer RTT %.1f ms over the punched path, configured 160 ms", r)
		}
	}
	if len(far.Impairments) == 0 || far.Impairments[0].Packets == 0 {
		t.Errorf("no packets went through the delay queue: %+v", far.Impairments)
	}
	if quiet := got["two-nat-cross "]; quiet == nil || !quiet.Success {
		t.Errorf("sequential prediction failed on a quiet network: %+v", quiet)
	}
	busy := got["two-nat-cross busy"]
	if busy == nil || busy.Cross == nil || busy.Cross.Connected == 0 {
		t.Fatalf("no cross traffic recorded: %+v", busy)
	}
	if busy.Success {
		t.Errorf("sequential prediction succeeded under %d cross connections", busy.Cross.Connected)
	}
}

// TestRawMethodsAgreeWithModel runs STUNT #1 and NATBlaster against pairs
// covering sequence tracking, ICMP handling, outbound SYN-ACK handling and
// port allocation (testdata/raw.yaml); every trial must match the model,
// and the ones the model expects to connect must actually have connected.
func TestRawMethodsAgreeWithModel(t *testing.T) {
	natlabtest.RequireRoot(t)
	sp, err := spec.LoadSpec("testdata/raw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := experiments.Run(context.Background(), sp, experiments.Options{Bin: buildtest.Commands(t, "machsend", "rendezvous"), Out: out,
		AttemptTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	trials, err := spec.LoadTrials(filepath.Join(out, spec.TrialsFile))
	if err != nil {
		t.Fatal(err)
	}
	wins := map[string]int{}
	for _, tr := range trials {
		if tr.LabError != "" {
			t.Errorf("%s: lab error: %s", tr.ID, tr.LabError)
		}
	}
	for _, tr := range trials {
		if !tr.Agree {
			t.Errorf("%s: measured success=%v (%s), model predicted %v: %s", tr.ID, tr.Success, tr.Class, tr.Predicted, tr.PredictedReason)
		}
		if tr.Success {
			wins[tr.Cell.Method]++
			if len(tr.Attempts) == 0 || tr.Attempts[0].Packets == 0 {
				t.Errorf("%s: connected but reported no packets", tr.ID)
			}
		} else if len(tr.Attempts) > 0 && tr.Attempts[0].Error == "" {
			t.Errorf("%s: failed without a reason", tr.ID)
		}
	}
	// eim x eim, strict, synack-drop (stunt1 only), prediction, birthday (natblaster only): 2 repetitions each.
	if wins["stunt1"] != 8 || wins["natblaster"] != 8 {
		t.Errorf("connected trials: %v, want 8 for each method", wins)
	}
}
