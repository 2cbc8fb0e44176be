package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/traversal"
	"github.com/machsend/machsend/traversal/method"
)

// firstByteRTTs are the round trips between the peers the first-byte
// measurement runs at (the server sits across the core, half of it away).
var firstByteRTTs = []time.Duration{0, 30 * time.Millisecond, 160 * time.Millisecond}

// firstByteMethods are what it compares: auto (which starts on the relay
// and moves to the direct path when the server relays), the punching
// methods that work between two endpoint-independent NATs (the
// throughput lab's pair), and the relay alone.
var firstByteMethods = []method.Method{method.Auto, method.P2PNAT, method.STUNT2, method.Relay}

// FirstByteFile is the size of the file each get fetches: enough for the
// direct race to finish while it is still moving at 160 ms.
const FirstByteFile = 64 << 20

// FirstByteTrial is one get: from its start to its first chunk written,
// whether (and how soon after the direct path authenticated) it moved off
// the relay, and its total time.
type FirstByteTrial struct {
	FirstByteMs float64 `json:"first_byte_ms"`
	FirstPath   string  `json:"first_path"`
	Moved       bool    `json:"moved"`
	// DirectMs is when the direct path authenticated, from the get's start;
	// MoveAfterMs is from then to the move (auto).
	DirectMs    float64 `json:"direct_ms,omitempty"`
	MoveAfterMs float64 `json:"move_after_ms,omitempty"`
	// CoordinationMs is the direct path's attempt from the receiver
	// learning that both peers were ready (punch.go) to its connection
	// authenticated.
	CoordinationMs float64 `json:"coordination_ms,omitempty"`
	TotalMs        float64 `json:"total_ms"`
}

// FirstByteRow is one method at one round trip.
type FirstByteRow struct {
	RTTms  float64          `json:"rtt_ms"`
	Method string           `json:"method"`
	Trials []FirstByteTrial `json:"trials"`
}

// measureFirstBytes runs every method at every round trip reps times in
// rotated order, on the throughput lab (unshaped).
func measureFirstBytes(ctx context.Context, lab *natlab.Lab, peers *experiments.LabPeers, tmp string, reps int) ([]FirstByteRow, error) {
	file := filepath.Join(tmp, "first-byte.bin")
	if err := experiments.WriteRandomFile(file, FirstByteFile, 3); err != nil {
		return nil, err
	}
	defer os.Remove(file)
	var rows []FirstByteRow
	for _, rtt := range firstByteRTTs {
		if err := (&spec.ImpairCase{RTT: rtt}).Apply(lab); err != nil {
			return nil, err
		}
		at := make([]FirstByteRow, len(firstByteMethods))
		for i, m := range firstByteMethods {
			at[i] = FirstByteRow{RTTms: float64(rtt.Microseconds()) / 1000, Method: string(m)}
		}
		for rep := 0; rep < reps; rep++ {
			for j := range firstByteMethods {
				i := (j + rep) % len(firstByteMethods)
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				tr, err := firstByte(peers, file, filepath.Join(tmp, "out-first"), firstByteMethods[i])
				if err != nil {
					return nil, fmt.Errorf("first byte, %s at RTT %s: %w", firstByteMethods[i], rtt, err)
				}
				at[i].Trials = append(at[i].Trials, tr)
			}
		}
		rows = append(rows, at...)
	}
	return rows, (&spec.ImpairCase{}).Apply(lab)
}

// firstByte runs one send/get over m and reads the receiver's events.
func firstByte(p *experiments.LabPeers, file, dir string, m method.Method) (FirstByteTrial, error) {
	defer os.RemoveAll(dir)
	snd, link, err := p.Send(p.A, []string{file}, "--method", string(m))
	if err != nil {
		return FirstByteTrial{}, err
	}
	defer snd.Proc.Kill()
	start := time.Now()
	get, err := p.Get(p.B, link, dir, "--method", string(m))
	if err != nil {
		return FirstByteTrial{}, err
	}
	evs, err := get.Wait(3 * time.Minute)
	if err != nil {
		return FirstByteTrial{}, err
	}
	ms := func(t time.Time) float64 { return float64(t.Sub(start).Microseconds()) / 1000 }
	var tr FirstByteTrial
	for _, e := range evs {
		switch {
		case e.Kind == session.KindConnected && tr.FirstPath == "" && e.Report != nil:
			tr.FirstPath = session.PathName(e.Report)
			if e.Report.Path != string(method.PathRelay) {
				tr.DirectMs = ms(e.Report.Start.Add(e.Report.ConnectTime))
				tr.CoordinationMs = coordinationMs(e.Report)
			}
		case e.Kind == session.KindProgress && e.Progress.Kind == "chunk" && tr.FirstByteMs == 0:
			tr.FirstByteMs = ms(e.Progress.Time)
		case e.Kind == session.KindMoved && e.Report != nil:
			tr.Moved = true
			tr.DirectMs = ms(e.Report.Start.Add(e.Report.ConnectTime))
			tr.MoveAfterMs = ms(e.Time) - tr.DirectMs
			tr.CoordinationMs = coordinationMs(e.Report)
		case e.Kind == session.KindDone:
			tr.TotalMs = ms(e.Time)
		}
	}
	if tr.FirstByteMs == 0 || tr.TotalMs == 0 {
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, string(e.Kind)+" "+e.Error)
		}
		return tr, fmt.Errorf("get over %s: no data or no end in its events (%s)", m, strings.Join(kinds, ", "))
	}
	return tr, nil
}

// coordinationMs is the winning attempt's time from both peers ready to
// its connection authenticated (0 when the report does not say).
func coordinationMs(r *traversal.Report) float64 {
	for _, a := range r.Attempts {
		if a.Attempt == r.Attempt && !a.Ready.IsZero() && !a.Authenticated.IsZero() {
			return float64(a.Authenticated.Sub(a.Ready).Microseconds()) / 1000
		}
	}
	return 0
}
