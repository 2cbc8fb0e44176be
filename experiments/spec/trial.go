package spec

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/impair"
	"github.com/machsend/machsend/traversal"
)

// TrialsFile is the JSON-lines file of trial records in a results directory.
const TrialsFile = "trials.jsonl"

// RunInfo describes a run: the exact inputs and environment, written next to
// the trials so every figure can be traced to what produced it.
type RunInfo struct {
	Spec        *Spec     `json:"spec"`
	CodeVersion string    `json:"code_version"`
	Kernel      string    `json:"kernel"`
	GoVersion   string    `json:"go_version"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Trials      int       `json:"trials"`
	Resumed     int       `json:"resumed"`
	Workers     int       `json:"workers"`
	// NoiseBoundMs is the scheduling noise above which a trial is noisy;
	// Parallel is how each stage adapted its labs at once to stay below it.
	NoiseBoundMs float64       `json:"noise_bound_ms"`
	Parallel     []Parallelism `json:"parallel,omitempty"`
	CPUs         int           `json:"cpus"`
	// Shard is the part of the spec this run made ("I/N"; empty: all);
	// Shards lists the shards a merged run was made of.
	Shard  string   `json:"shard,omitempty"`
	Shards []string `json:"shards,omitempty"`
}

// Trial is the record of one trial: its exact inputs, what happened, the
// model's prediction, and the evidence kept.
type Trial struct {
	ID            string              `json:"id"`
	Cell          Cell                `json:"cell"`
	Rep           int                 `json:"rep"`
	Start         time.Time           `json:"start"`
	DurationMs    float64             `json:"duration_ms"`
	Success       bool                `json:"success"`
	Method        string              `json:"method_won,omitempty"`
	Path          string              `json:"path,omitempty"`
	ConnectMs     float64             `json:"connect_ms,omitempty"`
	AttemptsToWin int                 `json:"attempts_to_success,omitempty"`
	RTTms         []float64           `json:"rtt_ms,omitempty"`
	Attempts      []traversal.Attempt `json:"attempts"`
	// Phases is where the trial's wall time went (nil in older runs).
	Phases *Phases `json:"phases_ms,omitempty"`
	// Birthday joins what both peers measured of NATBlaster's birthday
	// search in their last attempt that ran it (nil when none did).
	Birthday        *traversal.Birthday `json:"birthday,omitempty"`
	NATA            *traversal.NATInfo  `json:"nat_a,omitempty"`
	NATB            *traversal.NATInfo  `json:"nat_b,omitempty"`
	ErrorA          string              `json:"error_a,omitempty"`
	ErrorB          string              `json:"error_b,omitempty"`
	Predicted       bool                `json:"predicted"`
	PredictedReason string              `json:"predicted_reason"`
	// PredictedRace is set when the model says the outcome depends on
	// which SYN arrives first, with the condition for success.
	PredictedRace string `json:"predicted_race,omitempty"`
	// Modelled says the model accounts for the trial's conditions (see
	// ImpairCase.Modelled): only those trials count in its agreement.
	Modelled bool `json:"modelled"`
	// OffsetMs is the SYN offset of a race-sweep trial (Sweep set).
	Sweep       bool     `json:"sweep,omitempty"`
	OffsetMs    float64  `json:"offset_ms,omitempty"`
	Agree       bool     `json:"agree"`
	Class       string   `json:"class"`
	Explanation []string `json:"explanation,omitempty"`
	Pcaps       []string `json:"pcaps,omitempty"`
	// Conntrack is every NAT's conntrack table at the end of the trial. It
	// is kept with the captures (Evidence/conntrack.json.gz), not inline.
	Conntrack map[string][]natlab.ConntrackEntry `json:"-"`
	// Evidence is the folder (relative to the results) holding the trial's
	// captures and conntrack snapshot, for failures and one success per cell.
	Evidence      string            `json:"evidence,omitempty"`
	ProfileHashes map[string]string `json:"profile_hashes"`
	// LabError is set when the trial could not be run (twice): it is not an
	// outcome and is left out of every statistic.
	LabError string `json:"lab_error,omitempty"`
	// Delay states the network conditions of the trial (the impairment
	// case, or that none was emulated).
	Delay string `json:"lab_delay"`
	// Impairments is what the lab's impaired links did during the trial.
	Impairments []impair.Stats `json:"impairments,omitempty"`
	// PathRTTms are TCP handshakes from peer A to the rendezvous server
	// timed before the peers started; NoiseMs is how far the slowest
	// exceeded the configured round trip (the lab's scheduling noise), and
	// Noisy says it exceeded the run's bound: the trial's outcome counts,
	// its timings are left out of every timing figure.
	PathRTTms []float64 `json:"path_rtt_ms,omitempty"`
	NoiseMs   float64   `json:"noise_ms"`
	Noisy     bool      `json:"noisy,omitempty"`
	// Cross counts the cross-traffic connections made during the trial.
	Cross *natlab.CrossStats `json:"cross,omitempty"`
}

// LoadTrials reads a trials file; a missing file is no trials.
func LoadTrials(path string) ([]*Trial, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*Trial
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var t Trial
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			continue // a line cut short by an interrupted run
		}
		out = append(out, &t)
	}
	return out, sc.Err()
}

// FileName turns a trial id or cell key into a file name (no spaces,
// slashes or '=').
func FileName(s string) string {
	r := strings.NewReplacer(" ", "_", "=", "-", "#", "", "/", "-")
	return r.Replace(s)
}

// ReadJSON reads an optional JSON file of a results directory (run.json,
// throughput.json, ...); false when it is missing or unreadable.
func ReadJSON(path string, v any) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// Parallelism is how one stage of a run (unimpaired, impaired) adapted its
// number of labs to the scheduling noise the trials measured.
type Parallelism struct {
	Max     int `json:"max"`
	Lowest  int `json:"lowest"`
	Changes int `json:"changes"`
}

// Phases splits a trial's wall time, in milliseconds: the lab made ready
// for the cell (reset, impairments, captures started), the rendezvous
// server started, the path probed for scheduling noise, the two peers run
// (process start, NAT probing, coordination, the method's attempts, the
// round trips over the connection), and the evidence collected, classified
// and kept.
type Phases struct {
	LabMs      float64 `json:"lab"`
	ServerMs   float64 `json:"server"`
	ProbeMs    float64 `json:"probe"`
	PeersMs    float64 `json:"peers"`
	EvidenceMs float64 `json:"evidence"`
}
