package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/session"

	"github.com/machsend/machsend/natlab"
)

// transferRate runs one send/get of file over method and returns the
// receiver's rate (first file byte to last verified byte) and both peak RSSs.
func transferRate(ctx context.Context, p *experiments.LabPeers, file, dir, method string) (mbps float64, rssSend, rssGet int64, err error) {
	snd, link, err := p.Send(p.A, []string{file}, "--method", method)
	if err != nil {
		return 0, 0, 0, err
	}
	defer snd.Proc.Kill()
	get, err := p.Get(p.B, link, dir, "--method", method)
	if err != nil {
		return 0, 0, 0, err
	}
	evs, err := get.Wait(5 * time.Minute)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("get over %s: %w", method, err)
	}
	sevs, _ := snd.Wait(30 * time.Second)
	var first, last time.Time
	var bytes int64
	for _, e := range evs {
		switch e.Kind {
		case session.KindProgress:
			pr := e.Progress
			if pr.Kind == "file-start" && first.IsZero() {
				first = pr.Time
			}
			if pr.Kind == "done" {
				last, bytes = pr.Time, pr.Sent
			}
		case session.KindDone:
			rssGet = e.MaxRSSKB
		}
	}
	for _, e := range sevs {
		if e.Kind == session.KindDone {
			rssSend = e.MaxRSSKB
		}
	}
	if first.IsZero() || last.IsZero() || bytes == 0 {
		return 0, 0, 0, fmt.Errorf("get over %s reported no transfer", method)
	}
	return float64(bytes) / last.Sub(first).Seconds() / 1e6, rssSend, rssGet, nil
}

// plainRate measures an unencrypted bulk copy over the connection a method
// establishes (machsend punch --bulk): plain TCP over the same lab path.
func plainRate(ctx context.Context, p *experiments.LabPeers, method string, n int64) (float64, error) {
	args := []string{"punch", "--server", p.Server.String(), "--method", method, "--bulk", fmt.Sprint(n), "--pings", "1", "--timeout", "5m"}
	a, err := p.Machsend(p.A, nil, args...)
	if err != nil {
		return 0, err
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
		return 0, fmt.Errorf("punch created no session")
	}
	b, err := p.Machsend(p.B, nil, append(args, "--session", id)...)
	if err != nil {
		return 0, err
	}
	evs, err := b.Wait(5 * time.Minute)
	if err != nil {
		return 0, fmt.Errorf("bulk over %s: %w", method, err)
	}
	for _, e := range evs {
		if e.Kind == session.KindBulk && e.Bulk != nil {
			return e.Bulk.MBps, nil
		}
	}
	return 0, fmt.Errorf("bulk over %s: no figure", method)
}

// MeasureThroughput sends tp.Bytes through a punched connection and through
// the relay, with machsend (encrypted, hashed, written to disk) and as a
// plain unencrypted copy over the same kind of connection, all in one run
// in one two-NAT lab; peak memory is recorded for two file sizes.
func MeasureThroughput(ctx context.Context, opts experiments.Options, tp *spec.Throughput) (*ThroughputResult, error) {
	topo, err := natlab.LoadTopology("two-nat")
	if err != nil {
		return nil, err
	}
	pa, err := nat.Load(tp.ProfileA)
	if err != nil {
		return nil, err
	}
	pb, err := nat.Load(tp.ProfileB)
	if err != nil {
		return nil, err
	}
	sa, sb := topo.SideNATs()
	if len(sa) == 0 || len(sb) == 0 {
		return nil, fmt.Errorf("throughput: topology %s needs a NAT in front of each peer", topo.Name)
	}
	lab, err := natlab.Up(ctx, natlab.Options{Topology: topo, Profiles: map[string]*nat.Profile{sa[0]: pa, sb[0]: pb}})
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	peers, err := experiments.StartRendezvous(ctx, lab, opts.Bin, 0)
	if err != nil {
		return nil, err
	}
	// Files live in memory (/dev/shm when present), so the figure is about
	// the network path and the protocol, not this machine's disk.
	tmp, err := os.MkdirTemp(memDir(), "machsend-throughput-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	res := &ThroughputResult{Bytes: tp.Bytes, MBps: map[string]float64{}, Ratio: map[string]float64{}}
	big := filepath.Join(tmp, "big.bin")
	small := filepath.Join(tmp, "quarter.bin")
	if err := experiments.WriteRandomFile(big, tp.Bytes, 1); err != nil {
		return nil, err
	}
	if err := experiments.WriteRandomFile(small, tp.Bytes/4, 2); err != nil {
		return nil, err
	}
	var rss []string
	// Unshaped, the lab path is a veth at memory speed and both peers share
	// this machine's CPUs; shaped, the core router's links run at 1 Gbit/s
	// (tbf), the regime a real network puts transfers in.
	for _, shape := range []struct {
		label string
		bps   uint64
	}{{"", 0}, {" @ 1 Gbit/s", 1e9}} {
		for _, ifc := range []string{"wan-a", "wan-b"} {
			if shape.bps > 0 {
				if err := lab.Shape("core", ifc, shape.bps); err != nil {
					return nil, err
				}
			}
		}
		for _, m := range []struct{ name, method string }{{"punched", "p2pnat"}, {"relay", "relay"}} {
			name := m.name + shape.label
			plain, err := plainRate(ctx, peers, m.method, tp.Bytes)
			if err != nil {
				return nil, err
			}
			res.MBps["plain TCP, "+name] = plain
			res.Ratio["plain TCP, "+name] = 1
			rate, rs, rg, err := transferRate(ctx, peers, big, filepath.Join(tmp, "out-"+m.name), m.method)
			if err != nil {
				return nil, err
			}
			os.RemoveAll(filepath.Join(tmp, "out-"+m.name))
			res.MBps["machsend, "+name] = rate
			res.Ratio["machsend, "+name] = rate / plain
			if shape.bps == 0 {
				rss = append(rss, fmt.Sprintf("%s: peak RSS %d MiB sender / %d MiB receiver for %d MiB", m.name, rs>>10, rg>>10, tp.Bytes>>20))
			}
			if m.name == "punched" && shape.bps == 0 {
				_, rs2, rg2, err := transferRate(ctx, peers, small, filepath.Join(tmp, "out-small"), m.method)
				if err != nil {
					return nil, err
				}
				os.RemoveAll(filepath.Join(tmp, "out-small"))
				rss = append(rss, fmt.Sprintf("punched: peak RSS %d MiB sender / %d MiB receiver for %d MiB (memory does not grow with file size)", rs2>>10, rg2>>10, tp.Bytes>>22))
			}
		}
	}
	res.Notes = fmt.Sprintf("Profiles %s / %s; machsend's rate is the receiver's, from the first file byte to the last verified byte (AES-256-GCM, per-chunk SHA-256, written to a tmpfs so the disk is not measured); plain TCP is an unencrypted copy over a connection made by the same method (machsend punch --bulk). Unshaped, all four run at memory speed on two CPUs shared by both peers, the relay and the kernel, so machsend's AES-GCM and SHA-256 work is the bottleneck; at 1 Gbit/s the link is. %s.",
		tp.ProfileA, tp.ProfileB, strings.Join(rss, "; "))
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(opts.Out, "throughput.json"), b, 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

func memDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return ""
}

// ThroughputResult is the bulk-transfer figure of one run (written by the
// throughput measurement).
type ThroughputResult struct {
	Bytes int64              `json:"bytes"`
	MBps  map[string]float64 `json:"mbps"` // path -> MB/s
	Ratio map[string]float64 `json:"ratio_to_plain"`
	Notes string             `json:"notes"`
}
