package natlab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RecordDir holds one ownership record per live lab.
var RecordDir = "/run/natlab"

// Record says who owns a lab, so `natlab clean` can tell a crashed run's
// leftovers from a lab that is still in use.
type Record struct {
	Lab        string    `json:"lab"`
	Topology   string    `json:"topology"`
	OwnerPID   int       `json:"owner_pid"`
	OwnerStart uint64    `json:"owner_start"` // /proc/PID/stat starttime, guards against PID reuse
	Namespaces []string  `json:"namespaces"`
	Created    time.Time `json:"created"`
	// Description is the lab as `natlab up` printed it (hosts, addresses).
	Description json.RawMessage `json:"description,omitempty"`
}

func recordPath(lab string) string { return filepath.Join(RecordDir, lab+".json") }

// procStart returns a process's start time in clock ticks since boot.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Alive reports whether the record's owner process still runs.
func (r *Record) Alive() bool {
	st, err := procStart(r.OwnerPID)
	return err == nil && st == r.OwnerStart
}

// claim writes a lab's record before anything is built, so even a run killed
// half-way through Up leaves a record naming what it may have created.
func claim(lab, topo string, namespaces []string) error {
	if err := os.MkdirAll(RecordDir, 0o755); err != nil {
		return fmt.Errorf("record dir: %w", err)
	}
	existing, err := listLabNamespaces()
	if err != nil {
		return err
	}
	for _, ns := range existing {
		if strings.HasPrefix(ns, NSPrefix+lab+"-") {
			return fmt.Errorf("%w: %s (namespace %s exists; `natlab down %s` or `natlab clean`)", ErrLabExists, lab, ns, lab)
		}
	}
	st, err := procStart(os.Getpid())
	if err != nil {
		return fmt.Errorf("own start time: %w", err)
	}
	rec := Record{Lab: lab, Topology: topo, OwnerPID: os.Getpid(), OwnerStart: st, Namespaces: namespaces, Created: time.Now().UTC()}
	b, _ := json.MarshalIndent(rec, "", "  ")
	f, err := os.OpenFile(recordPath(lab), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %s (record %s; `natlab down %s` or `natlab clean`)", ErrLabExists, lab, recordPath(lab), lab)
	}
	if err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	_, werr := f.Write(b)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(recordPath(lab))
		return fmt.Errorf("write record: %w", werr)
	}
	return nil
}

// UpdateRecord stores the lab's description and, when a holder process takes
// over a lab (natlab up --detach), its new owner.
func (l *Lab) UpdateRecord(description []byte) error {
	rec, err := ReadRecord(l.Name)
	if err != nil {
		return err
	}
	st, err := procStart(os.Getpid())
	if err != nil {
		return fmt.Errorf("own start time: %w", err)
	}
	rec.OwnerPID, rec.OwnerStart = os.Getpid(), st
	if description != nil {
		rec.Description = description
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	tmp := recordPath(l.Name) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	return os.Rename(tmp, recordPath(l.Name))
}

// ReadRecord reads one lab's record.
func ReadRecord(lab string) (*Record, error) {
	b, err := os.ReadFile(recordPath(lab))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoLab, lab)
	}
	if err != nil {
		return nil, fmt.Errorf("read record: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("record %s: %w", recordPath(lab), err)
	}
	return &r, nil
}

// Records lists every lab record, sorted by lab name.
func Records() ([]*Record, error) {
	ents, err := os.ReadDir(RecordDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	var out []*Record
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		r, err := ReadRecord(name)
		if err != nil {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Lab < out[j].Lab })
	return out, nil
}

// removeLab kills what runs in a lab's namespaces, deletes them and its record.
func removeLab(lab string, namespaces []string) error {
	var errs []error
	killInNamespaces(namespaces)
	for _, ns := range namespaces {
		if err := deleteNamedNS(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(recordPath(lab)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove record: %w", err))
	}
	if err := os.Remove(controlPath(lab)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove control socket: %w", err))
	}
	if err := os.RemoveAll(resolvDir(lab)); err != nil {
		errs = append(errs, fmt.Errorf("remove resolver files: %w", err))
	}
	return errors.Join(errs...)
}

// killInNamespaces SIGKILLs every process whose network namespace is one of
// the given lab namespaces. Only lab code starts processes there, so this
// stops exactly what a (possibly crashed) lab owner started, by PID.
func killInNamespaces(namespaces []string) {
	inos := map[string]bool{}
	for _, ns := range namespaces {
		if ino, err := nsInode(ns); err == nil {
			inos[fmt.Sprintf("net:[%d]", ino)] = true
		}
	}
	if len(inos) == 0 {
		return
	}
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err == nil && inos[link] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Down removes a lab by name. If its owner still runs (a `natlab up` holding
// the lab) the owner is asked to stop (SIGTERM, by its recorded PID) and given
// time to clean up; otherwise the lab is removed directly.
func Down(lab string) error {
	rec, err := ReadRecord(lab)
	if err != nil {
		return err
	}
	if rec.Alive() && rec.OwnerPID != os.Getpid() {
		_ = syscall.Kill(rec.OwnerPID, syscall.SIGTERM)
		for i := 0; i < 100 && rec.Alive(); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := os.Stat(recordPath(lab)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	return removeLab(lab, rec.Namespaces)
}

// CleanReport lists what Clean removed.
type CleanReport struct {
	Labs       []string `json:"labs"`
	Namespaces []string `json:"namespaces"`
	Kept       []string `json:"kept"` // labs whose owner is alive
}

// Clean removes the leftovers of crashed runs: labs whose owner process is
// gone, and lab-prefixed namespaces that no live lab claims. Labs whose owner
// still runs are left alone.
func Clean() (CleanReport, error) {
	var rep CleanReport
	recs, err := Records()
	if err != nil {
		return rep, err
	}
	claimed := map[string]bool{}
	var errs []error
	for _, r := range recs {
		if r.Alive() {
			rep.Kept = append(rep.Kept, r.Lab)
			for _, ns := range r.Namespaces {
				claimed[ns] = true
			}
			continue
		}
		if err := removeLab(r.Lab, r.Namespaces); err != nil {
			errs = append(errs, err)
		}
		rep.Labs = append(rep.Labs, r.Lab)
	}
	nss, err := listLabNamespaces()
	if err != nil {
		return rep, err
	}
	var orphans []string
	for _, ns := range nss {
		if !claimed[ns] {
			orphans = append(orphans, ns)
		}
	}
	killInNamespaces(orphans)
	for _, ns := range orphans {
		if err := deleteNamedNS(ns); err != nil {
			errs = append(errs, err)
		}
		rep.Namespaces = append(rep.Namespaces, ns)
	}
	return rep, errors.Join(errs...)
}
