package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/session"

	"github.com/machsend/machsend/natlab"
)

// rate is one copy's figure: the receiver's rate, both peak RSSs, and
// the CPU time both processes used, start to exit.
type rate struct {
	mbps          float64
	rssSendKiB    int64
	rssReceiveKiB int64
	cpuSec        float64
}

// cpuSeconds is the user and system time the exited processes used (the
// kernel's account, from wait4); 0 (unknown) when one still runs.
func cpuSeconds(rs ...*experiments.Running) float64 {
	sum := 0.0
	for _, r := range rs {
		select {
		case <-r.Proc.Done():
		default:
			return 0
		}
		st := r.Proc.Cmd.ProcessState
		if st == nil {
			return 0
		}
		sum += (st.UserTime() + st.SystemTime()).Seconds()
	}
	return sum
}

// transferRate runs one send/get of file over method (extra flags for get)
// and returns the receiver's rate and both peak RSSs. Like a copy's, the
// rate starts at the first data: from the first chunk written (the
// receiver always reports it) to the last byte in place, counting the
// bytes after that chunk.
func transferRate(p *experiments.LabPeers, file, dir, method string, extra ...string) (rate, error) {
	defer os.RemoveAll(dir)
	snd, link, err := p.Send(p.A, []string{file}, "--method", method)
	if err != nil {
		return rate{}, err
	}
	defer snd.Proc.Kill()
	get, err := p.Get(p.B, link, dir, append([]string{"--method", method}, extra...)...)
	if err != nil {
		return rate{}, err
	}
	evs, err := get.Wait(5 * time.Minute)
	if err != nil {
		return rate{}, fmt.Errorf("get over %s: %w", method, err)
	}
	sevs, _ := snd.Wait(30 * time.Second)
	var first, last time.Time
	var firstBytes, bytes int64
	var r rate
	for _, e := range evs {
		switch e.Kind {
		case session.KindProgress:
			pr := e.Progress
			if pr.Kind == "chunk" && first.IsZero() {
				first, firstBytes = pr.Time, pr.Sent
			}
			if pr.Kind == "done" {
				last, bytes = pr.Time, pr.Sent
			}
		case session.KindDone:
			r.rssReceiveKiB = e.MaxRSSKB
		}
	}
	for _, e := range sevs {
		if e.Kind == session.KindDone {
			r.rssSendKiB = e.MaxRSSKB
		}
	}
	if first.IsZero() || last.IsZero() || bytes <= firstBytes {
		return rate{}, fmt.Errorf("get over %s reported no transfer", method)
	}
	r.mbps = float64(bytes-firstBytes) / last.Sub(first).Seconds() / 1e6
	r.cpuSec = cpuSeconds(get, snd)
	return r, nil
}

// bulkRate measures a copy of file over the connection a method
// establishes (machsend punch --bulk, extra flags for both sides), from the
// file into out on the same memory file system as a transfer.
func bulkRate(p *experiments.LabPeers, method, file, out string, n int64, extra ...string) (rate, error) {
	defer os.Remove(out)
	args := append([]string{"punch", "--server", p.Server.String(), "--method", method, "--bulk", fmt.Sprint(n), "--pings", "1", "--timeout", "5m"}, extra...)
	a, err := p.Machsend(p.A, nil, append(args, "--bulk-from", file)...)
	if err != nil {
		return rate{}, err
	}
	defer a.Proc.Kill()
	var id string
	for i := 0; i < 200 && id == ""; i++ {
		if e, ok := session.First(a.Events(), session.KindSession); ok {
			id = e.Session
		}
		time.Sleep(20 * time.Millisecond)
	}
	if id == "" {
		return rate{}, fmt.Errorf("punch created no session")
	}
	b, err := p.Machsend(p.B, nil, append(args, "--session", id, "--bulk-to", out)...)
	if err != nil {
		return rate{}, err
	}
	evs, err := b.Wait(5 * time.Minute)
	if err != nil {
		return rate{}, fmt.Errorf("bulk over %s: %w", method, err)
	}
	_, _ = a.Wait(30 * time.Second)
	for _, e := range evs {
		if e.Kind == session.KindBulk && e.Bulk != nil {
			return rate{mbps: e.Bulk.MBps, cpuSec: cpuSeconds(a, b)}, nil
		}
	}
	return rate{}, fmt.Errorf("bulk over %s: no figure", method)
}

// Copy kinds, the one table of what the throughput measurement compares.
const (
	CopyPlain    = "plain TCP"
	CopyAES      = "AES-256-GCM copy"
	CopyMachsend = "machsend"
	CopyChecksum = "machsend --checksum"
)

// copyKinds is every copy measured on each path, in the order of the
// first repetition (later repetitions rotate it, so no kind always runs
// first or last).
var copyKinds = []struct {
	name string
	run  func(p *experiments.LabPeers, method, file, tmp string, n int64) (rate, error)
}{
	{CopyPlain, func(p *experiments.LabPeers, method, file, tmp string, n int64) (rate, error) {
		return bulkRate(p, method, file, filepath.Join(tmp, "plain.out"), n)
	}},
	{CopyAES, func(p *experiments.LabPeers, method, file, tmp string, n int64) (rate, error) {
		return bulkRate(p, method, file, filepath.Join(tmp, "aes.out"), n, "--bulk-secure")
	}},
	{CopyMachsend, func(p *experiments.LabPeers, method, file, tmp string, _ int64) (rate, error) {
		return transferRate(p, file, filepath.Join(tmp, "out"), method)
	}},
	{CopyChecksum, func(p *experiments.LabPeers, method, file, tmp string, _ int64) (rate, error) {
		return transferRate(p, file, filepath.Join(tmp, "out"), method, "--checksum")
	}},
}

// throughputPaths are the lab paths: a punched connection and the relay,
// at memory speed (CPU-bound, so noisy: repeated) and with the core
// router's links shaped to 1 Gbit/s (link-bound: within a few per cent
// from run to run, measured once).
var throughputPaths = []struct {
	label, method string
	bps           uint64
	repeat        bool
}{
	{"punched", "p2pnat", 0, true}, {"relay", "relay", 0, true},
	{"punched @ 1 Gbit/s", "p2pnat", 1e9, false}, {"relay @ 1 Gbit/s", "relay", 1e9, false},
}

// MeasureThroughput copies tp.Bytes over the same lab paths in one run:
// plain TCP, the same bytes through machsend's secure channel (the
// cipher's limit), and machsend's transfer with and without --checksum,
// each tp.Repetitions times in rotated order; ratios are paired within a
// repetition. Peak memory is recorded for two file sizes.
func MeasureThroughput(ctx context.Context, opts experiments.Options, tp *spec.Throughput) (*ThroughputResult, error) {
	lab, peers, err := throughputLab(ctx, opts.Bin, tp)
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	// Files live in memory (/dev/shm when present), so the figure is about
	// the network path and the protocol, not this machine's disk.
	tmp, err := os.MkdirTemp(memDir(), "machsend-throughput-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	big, small := filepath.Join(tmp, "big.bin"), filepath.Join(tmp, "quarter.bin")
	if err := experiments.WriteRandomFile(big, tp.Bytes, 1); err != nil {
		return nil, err
	}
	if err := experiments.WriteRandomFile(small, tp.Bytes/4, 2); err != nil {
		return nil, err
	}
	reps := max(tp.Repetitions, 1)
	res := &ThroughputResult{Bytes: tp.Bytes, Repetitions: reps}
	var shaped uint64
	for _, path := range throughputPaths {
		for _, ifc := range []string{"wan-a", "wan-b"} {
			if path.bps == shaped {
				break
			}
			if err := lab.Shape("core", ifc, path.bps); err != nil {
				return nil, err
			}
		}
		shaped = path.bps
		n := 1
		if path.repeat {
			n = reps
		}
		rows, err := measurePath(ctx, peers, path.label, path.method, big, tmp, tp.Bytes, n)
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, rows...)
	}
	r, err := transferRate(peers, small, filepath.Join(tmp, "out-small"), "p2pnat")
	if err != nil {
		return nil, err
	}
	if res.Link, err = measureLink(peers, tmp); err != nil {
		return nil, err
	}
	for _, ifc := range []string{"wan-a", "wan-b"} {
		if err := lab.Shape("core", ifc, 0); err != nil {
			return nil, err
		}
	}
	if res.FirstByte, err = measureFirstBytes(ctx, lab, peers, tmp, reps); err != nil {
		return nil, err
	}
	res.SmallFile = ThroughputRow{Path: "punched @ 1 Gbit/s", Copy: CopyMachsend, MBps: []float64{r.mbps}, RSSSendKiB: r.rssSendKiB, RSSReceiveKiB: r.rssReceiveKiB}
	res.Notes = fmt.Sprintf("Profiles %s / %s. machsend's rate is the receiver's, from its first chunk written to the last byte in place (the bytes after that chunk); the copies' is the receiver's from the first byte read to the last. Every copy reads a file and writes one on a memory file system (/dev/shm), so the disk is not measured. Unshaped, the lab path is a veth at memory speed and both peers, the relay and the kernel share this machine's two CPUs, so CPU work decides the rate; at 1 Gbit/s the link does.", tp.ProfileA, tp.ProfileB)
	if pinned(tp) {
		res.Notes += " In every copy alike, the sender runs on CPU 0 and the receiver on CPU 1 (taskset); the relay and the kernel's work go where the scheduler puts them."
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("throughput.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(opts.Out, "throughput.json"), b, 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// pinned says whether the peers run pinned to a CPU each.
func pinned(tp *spec.Throughput) bool { return tp.Pin && runtime.NumCPU() >= 2 }

// throughputLab starts the two-NAT lab and its rendezvous server.
func throughputLab(ctx context.Context, bin string, tp *spec.Throughput) (*natlab.Lab, *experiments.LabPeers, error) {
	topo, err := natlab.LoadTopology("two-nat")
	if err != nil {
		return nil, nil, err
	}
	pa, err := nat.Load(tp.ProfileA)
	if err != nil {
		return nil, nil, err
	}
	pb, err := nat.Load(tp.ProfileB)
	if err != nil {
		return nil, nil, err
	}
	sa, sb := topo.SideNATs()
	if len(sa) == 0 || len(sb) == 0 {
		return nil, nil, fmt.Errorf("throughput: topology %s needs a NAT in front of each peer", topo.Name)
	}
	lab, err := natlab.Up(ctx, natlab.Options{Topology: topo, Profiles: map[string]*nat.Profile{sa[0]: pa, sb[0]: pb}})
	if err != nil {
		return nil, nil, err
	}
	peers, err := experiments.StartRendezvous(ctx, lab, bin, 0)
	if err != nil {
		lab.Close()
		return nil, nil, err
	}
	if pinned(tp) {
		peers.CPU = map[string]int{peers.A: 0, peers.B: 1}
	}
	return lab, peers, nil
}

// measurePath runs every copy kind reps times over one path, the order
// rotated by repetition, and returns one row per kind with its ratios to
// the AES copy and to plain TCP paired within each repetition.
func measurePath(ctx context.Context, peers *experiments.LabPeers, label, method, file, tmp string, n int64, reps int) ([]ThroughputRow, error) {
	rows := make([]ThroughputRow, len(copyKinds))
	for i, k := range copyKinds {
		rows[i] = ThroughputRow{Path: label, Copy: k.name}
	}
	for rep := 0; rep < reps; rep++ {
		figures := make([]rate, len(copyKinds))
		for j := range copyKinds {
			i := (j + rep) % len(copyKinds)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			r, err := copyKinds[i].run(peers, method, file, tmp, n)
			if err != nil {
				return nil, fmt.Errorf("%s over %s: %w", copyKinds[i].name, label, err)
			}
			figures[i] = r
		}
		for i := range rows {
			rows[i].MBps = append(rows[i].MBps, figures[i].mbps)
			rows[i].RatioAES = append(rows[i].RatioAES, figures[i].mbps/figures[1].mbps)
			rows[i].RatioPlain = append(rows[i].RatioPlain, figures[i].mbps/figures[0].mbps)
			if c, aes := figures[i].cpuSec, figures[1].cpuSec; c > 0 && aes > 0 { // both processes' times known
				rows[i].CPUPerGB = append(rows[i].CPUPerGB, c/(float64(n)/1e9))
				rows[i].CPURatioAES = append(rows[i].CPURatioAES, c/aes)
			}
			rows[i].RSSSendKiB = max(rows[i].RSSSendKiB, figures[i].rssSendKiB)
			rows[i].RSSReceiveKiB = max(rows[i].RSSReceiveKiB, figures[i].rssReceiveKiB)
		}
	}
	return rows, nil
}

func memDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return ""
}

// linkBytes is the size of the file whose time to link is measured.
const linkBytes = 10 << 30

// measureLink times `machsend send` from its start to its link for a
// file of linkBytes (sparse: it takes no memory, and reading it would
// still cost a pass over every byte) and for a 1-byte file.
func measureLink(p *experiments.LabPeers, tmp string) (LinkTime, error) {
	lt := LinkTime{Bytes: linkBytes}
	for _, f := range []struct {
		name string
		size int64
		out  *float64
	}{{"link-big.bin", linkBytes, &lt.Seconds}, {"link-one.bin", 1, &lt.OneByteSeconds}} {
		path := filepath.Join(tmp, f.name)
		file, err := os.Create(path)
		if err != nil {
			return lt, err
		}
		err = file.Truncate(f.size)
		file.Close()
		if err != nil {
			return lt, err
		}
		start := time.Now()
		snd, _, err := p.Send(p.A, []string{path})
		if err != nil {
			return lt, err
		}
		snd.Proc.Kill()
		e, ok := session.First(snd.Events(), session.KindLink)
		if !ok {
			return lt, fmt.Errorf("send of %s: no link event", f.name)
		}
		*f.out = e.Time.Sub(start).Seconds()
		os.Remove(path)
	}
	return lt, nil
}

// LinkTime is how long `machsend send` takes from its start to its link.
type LinkTime struct {
	Bytes          int64   `json:"bytes"`
	Seconds        float64 `json:"seconds"`
	OneByteSeconds float64 `json:"one_byte_seconds"`
}

// ThroughputResult is the bulk-transfer figure of one run (written by the
// throughput measurement to throughput.json).
type ThroughputResult struct {
	Bytes       int64           `json:"bytes"`
	Repetitions int             `json:"repetitions"`
	Rows        []ThroughputRow `json:"rows"`
	// SmallFile is machsend with a quarter of Bytes, for peak memory.
	SmallFile ThroughputRow `json:"small_file"`
	Link      LinkTime      `json:"link"`
	// FirstByte is the time to the first byte, per method and round trip.
	FirstByte []FirstByteRow `json:"first_byte,omitempty"`
	Notes     string         `json:"notes"`
}

// ThroughputRow is one copy kind over one path: a figure per repetition,
// and the ratios to the AES copy and to plain TCP of the same repetition.
// CPUPerGB is the CPU time both processes used per GB of the file (from
// their start to their exit, so the connection's set-up is in it), and
// CPURatioAES that time against the AES copy's of the same repetition:
// a second view of the cost, which also varies with the scheduling.
type ThroughputRow struct {
	Path          string    `json:"path"`
	Copy          string    `json:"copy"`
	MBps          []float64 `json:"mbps"`
	RatioAES      []float64 `json:"ratio_to_aes"`
	RatioPlain    []float64 `json:"ratio_to_plain"`
	CPUPerGB      []float64 `json:"cpu_s_per_gb,omitempty"`
	CPURatioAES   []float64 `json:"cpu_ratio_to_aes,omitempty"`
	RSSSendKiB    int64     `json:"rss_send_kib,omitempty"`
	RSSReceiveKiB int64     `json:"rss_receive_kib,omitempty"`
}
