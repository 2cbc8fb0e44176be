package experiments_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/nat"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/natlab/natlabtest"
)

func TestMain(m *testing.M) { os.Exit(natlabtest.LeakCheck(m.Run)) }

// buildBinaries compiles machsend and rendezvous for the lab.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir, "../cmd/machsend", "../cmd/rendezvous")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return dir
}

// The regression check: every knob once, every method, real binaries in
// real labs; any cell whose outcome disagrees with the NAT model fails.
// It also covers traversal's integration in the two-nat, same-lan,
// one-public and double-nat topologies.
func TestQuickMatrixAgreesWithModel(t *testing.T) {
	natlabtest.RequireRoot(t)
	if testing.Short() {
		t.Skip("-short: the quick matrix takes about half a minute")
	}
	spec, err := experiments.LoadSpec("quick.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	start := time.Now()
	info, err := experiments.Run(context.Background(), spec, experiments.Options{Bin: buildBinaries(t), Out: out,
		AttemptTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	trials, err := experiments.LoadTrials(filepath.Join(out, experiments.TrialsFile))
	if err != nil {
		t.Fatal(err)
	}
	cells, _ := spec.Cells()
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
	}
}

func TestSpecCells(t *testing.T) {
	tests := []struct {
		name, doc string
		cells     int
		wantErr   bool
	}{
		{"pairs", "name: x\nmethods: [machsend, relay]\ngroups:\n  - topology: two-nat\n    pairs: [[full-cone, none], [none, none]]\n", 4, false},
		{"product unordered", "name: x\nmethods: [auto]\ngroups:\n  - topology: two-nat\n    nats: {nat-a: [full-cone, none, rfc5382], nat-b: [full-cone, none, rfc5382]}\n    unordered: [nat-a, nat-b]\n", 6, false},
		{"all profiles", "name: x\nmethods: [auto]\ngroups:\n  - topology: one-public\n    nats: {nat-a: [all]}\n", 14, false},
		{"unknown profile", "name: x\nmethods: [auto]\ngroups:\n  - topology: one-public\n    nats: {nat-a: [moon]}\n", 0, true},
		{"unknown method", "name: x\nmethods: [teleport]\ngroups:\n  - topology: one-public\n    nats: {nat-a: [none]}\n", 0, true},
		{"not a NAT node", "name: x\nmethods: [auto]\ngroups:\n  - topology: one-public\n    nats: {nat-a: [none], core: [none]}\n", 0, true},
		{"pair arity", "name: x\nmethods: [auto]\ngroups:\n  - topology: two-nat\n    pairs: [[none]]\n", 0, true},
		{"unknown field", "name: x\ncolour: red\ngroups: []\n", 0, true},
		{"cases", "name: x\nmethods: [auto, p2pnat]\nimpairments:\n  slow: {rtt: 100ms, loss: 1%}\n  busy: {cross: 20}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n  - topology: two-nat\n    pairs: [[none, none], [full-cone, none]]\n    cases: [none, slow]\n    repetitions: 2\n", 8, false},
		{"unknown case", "name: x\nmethods: [auto]\nimpairments:\n  slow: {rtt: 100ms}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n    cases: [fast]\n", 0, true},
		{"cross needs a cross host", "name: x\nmethods: [auto]\nimpairments:\n  busy: {cross: 20}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n    cases: [busy]\n", 0, true},
		{"bad loss", "name: x\nmethods: [auto]\nimpairments:\n  bad: {loss: 120%}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n", 0, true},
		{"case named none", "name: x\nmethods: [auto]\nimpairments:\n  none: {rtt: 1ms}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := experiments.ParseSpec("t.yaml", []byte(tt.doc))
			if tt.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cells, _ := s.Cells()
			if len(cells) != tt.cells {
				t.Errorf("%d cells, want %d", len(cells), tt.cells)
			}
		})
	}
	for _, f := range []string{"quick.yaml", "paper.yaml"} {
		if _, err := experiments.LoadSpec(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// A small run of the rendezvous load test (the full one, 10,000 clients and
// 1,000 sessions/s, is part of make experiment).
func TestRendezvousLoadSmall(t *testing.T) {
	bin := buildBinaries(t)
	r, err := experiments.RunLoad(context.Background(), bin, 500, 250, 500)
	if err != nil {
		t.Fatal(err)
	}
	if r.Failed != 0 || r.Sessions != 250 || r.Clients != 500 {
		t.Errorf("load: %+v", r)
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
	spec, err := experiments.ParseSpec("impaired.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := experiments.Run(context.Background(), spec, experiments.Options{Bin: buildBinaries(t), Out: out,
		AttemptTimeout: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	trials, err := experiments.LoadTrials(filepath.Join(out, experiments.TrialsFile))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*experiments.Trial{}
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

// natcheck behind every built-in profile and behind layered NATs: every
// knob it reports agrees with the configuration, every measured profile
// passes natlab check and has the original's traversal matrix, and a run
// is quick and leaves no socket open.
func TestNATCheck(t *testing.T) {
	natlabtest.RequireRoot(t)
	if testing.Short() {
		t.Skip("-short: natcheck behind every profile takes about a minute")
	}
	rows, err := experiments.RunNATCheck(context.Background(), buildBinaries(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	agree, counted := experiments.NATCheckSummary(rows)
	t.Logf("%d of %d observed knobs agree", agree, counted)
	for _, r := range rows {
		t.Run(r.Case, func(t *testing.T) {
			if r.Err != "" {
				t.Fatal(r.Err)
			}
			reported := map[string]bool{}
			for _, k := range r.Knobs {
				reported[k.Knob] = true
				if !k.Agree {
					t.Errorf("%s: detected %s, configured %s", k.Knob, k.Detected, k.Configured)
				}
			}
			// natcheck reports every knob of the NAT model behind a NAT:
			// measured, or unknown with the table's reason.
			for _, k := range nat.Knobs {
				if r.Case != "none" && k.Name != "port-delta" && !reported[k.Name] { // the delta only behind sequential allocation
					t.Errorf("natcheck did not report knob %s", k.Name)
				}
			}
			if !r.CheckOK {
				t.Errorf("natlab check of the measured profile: %s\n%s", r.CheckErr, r.Profile)
			}
			if r.ModelSame != r.ModelAll {
				t.Errorf("model matrix: %d of %d cells as the original: %v", r.ModelSame, r.ModelAll, r.ModelDiff)
			}
			if r.Duration > 30*time.Second || r.LeftOpen != 0 || r.Probes > 100 {
				t.Errorf("took %v with %d probe connections, %d sockets left open", r.Duration, r.Probes, r.LeftOpen)
			}
			layered := strings.HasPrefix(r.Layered, "yes")
			switch {
			case r.Topology == "double-nat" && !layered && !strings.HasPrefix(r.Layered, "cannot tell"):
				t.Errorf("double NAT reported as %q", r.Layered)
			case r.Topology != "double-nat" && layered:
				t.Errorf("single NAT reported as layered: %q", r.Layered)
			}
		})
	}
}

// TestRawMethodsAgreeWithModel runs STUNT #1 and NATBlaster against pairs
// covering sequence tracking, ICMP handling, outbound SYN-ACK handling and
// port allocation (testdata/raw.yaml); every trial must match the model,
// and the ones the model expects to connect must actually have connected.
func TestRawMethodsAgreeWithModel(t *testing.T) {
	natlabtest.RequireRoot(t)
	spec, err := experiments.LoadSpec("testdata/raw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := experiments.Run(context.Background(), spec, experiments.Options{Bin: buildBinaries(t), Out: out,
		AttemptTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	trials, err := experiments.LoadTrials(filepath.Join(out, experiments.TrialsFile))
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
