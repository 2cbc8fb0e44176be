package report

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/machsend/machsend/experiments/classify"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
	"github.com/machsend/machsend/nat"

	"gopkg.in/yaml.v3"
)

// CellStats summarises the trials of one cell.
type CellStats struct {
	Cell            spec.Cell
	N, Successes    int
	Lo, Hi          float64
	Predicted       bool
	PredictedReason string
	Disagree        int
	Classes         map[string]int
	ConnectMs       []float64
	Methods         map[string]int // which method won (auto)
}

// Rate is the success rate of a cell.
func (c *CellStats) Rate() float64 {
	if c.N == 0 {
		return 0
	}
	return float64(c.Successes) / float64(c.N)
}

// Summarise groups trials by cell, in the order of the cells' keys, so
// that every table is the same however the trials were ordered (one run,
// or shards merged).
func Summarise(trials []*spec.Trial) []*CellStats {
	by := map[string]*CellStats{}
	var order []string
	for _, t := range trials {
		if t.LabError != "" {
			continue
		}
		k := t.Cell.Key()
		cs := by[k]
		if cs == nil {
			cs = &CellStats{Cell: t.Cell, Classes: map[string]int{}, Methods: map[string]int{},
				Predicted: t.Predicted, PredictedReason: t.PredictedReason}
			by[k] = cs
			order = append(order, k)
		}
		cs.N++
		if t.Success {
			cs.Successes++
			if !t.Noisy { // a noisy trial's outcome counts, its timing does not
				cs.ConnectMs = append(cs.ConnectMs, t.ConnectMs)
			}
			cs.Methods[t.Method]++
		}
		if !t.Agree {
			cs.Disagree++
		}
		cs.Classes[t.Class]++
	}
	sort.Strings(order)
	var out []*CellStats
	for _, k := range order {
		cs := by[k]
		sort.Float64s(cs.ConnectMs)
		cs.Lo, cs.Hi = stats.Wilson(cs.Successes, cs.N, 1.96)
		out = append(out, cs)
	}
	return out
}

// MethodStats summarises one method over a set of cells.
type MethodStats struct {
	Method               string
	N, Successes         int
	Lo, Hi               float64
	MedianMs, P95Ms      float64
	MedianAttempts       float64
	ConnectMs, Attempts  []float64
	CellsAgree, CellsAll int
}

func summariseMethods(trials []*spec.Trial, topology string) []*MethodStats {
	by := map[string]*MethodStats{}
	for _, t := range trials {
		if t.LabError != "" || (topology != "" && t.Cell.Topology != topology) {
			continue
		}
		m := by[t.Cell.Method]
		if m == nil {
			m = &MethodStats{Method: t.Cell.Method}
			by[t.Cell.Method] = m
		}
		m.N++
		if t.Success {
			m.Successes++
			if !t.Noisy {
				m.ConnectMs = append(m.ConnectMs, t.ConnectMs)
			}
			m.Attempts = append(m.Attempts, float64(t.AttemptsToWin))
		}
	}
	var out []*MethodStats
	for _, name := range spec.AllMethods {
		m := by[name]
		if m == nil {
			continue
		}
		m.Lo, m.Hi = stats.Wilson(m.Successes, m.N, 1.96)
		m.MedianMs, m.P95Ms = stats.Quantile(m.ConnectMs, 0.5), stats.Quantile(m.ConnectMs, 0.95)
		m.MedianAttempts = stats.Quantile(m.Attempts, 0.5)
		out = append(out, m)
	}
	return out
}

// Population is a weighting of profiles: "what fraction of pairs would this
// method connect?" under the user's own assumptions about what NATs exist.
type Population struct {
	Name    string             `yaml:"name"`
	Source  string             `yaml:"source"`
	Weights map[string]float64 `yaml:"weights"`
}

// LoadPopulation reads a weights file.
func LoadPopulation(path string) (*Population, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p Population
	if err := yaml.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("population %s: %w", path, err)
	}
	for name := range p.Weights {
		if _, err := nat.Load(name); err != nil {
			return nil, fmt.Errorf("population %s: %w", path, err)
		}
	}
	return &p, nil
}

// PopulationRates returns, per method, the success rate over ordered pairs
// of two-nat profiles drawn independently from the population's weights
// (pairs the matrix did not measure are left out and reported).
func PopulationRates(cells []*CellStats, pop *Population) (map[string]float64, map[string]float64) {
	rate := map[string]map[[2]string]float64{}
	for _, c := range cells {
		if c.Cell.Topology != "two-nat" {
			continue
		}
		a, b := c.Cell.SideProfiles()
		if rate[c.Cell.Method] == nil {
			rate[c.Cell.Method] = map[[2]string]float64{}
		}
		rate[c.Cell.Method][[2]string{a, b}] = c.Rate()
		rate[c.Cell.Method][[2]string{b, a}] = c.Rate()
	}
	out, covered := map[string]float64{}, map[string]float64{}
	for m, r := range rate {
		var num, den, all float64
		for a, wa := range pop.Weights {
			for b, wb := range pop.Weights {
				all += wa * wb
				if v, ok := r[[2]string{a, b}]; ok {
					num += wa * wb * v
					den += wa * wb
				}
			}
		}
		if den > 0 {
			out[m] = num / den
			covered[m] = den / all
		}
	}
	return out, covered
}

// WriteOutputs regenerates every summary, plot and the report from
// trials.jsonl, and the figures the classification and the benchmarks wrote
// beside it if present (ladders/index.json, throughput.json,
// rendezvous-load.json, calibration and natcheck); it reads no capture.
func WriteOutputs(out string) error {
	trials, err := spec.LoadTrials(filepath.Join(out, spec.TrialsFile))
	if err != nil {
		return err
	}
	if len(trials) == 0 {
		return fmt.Errorf("no trials in %s", out)
	}
	all := trials
	trials, _ = splitImpaired(all)
	cells := Summarise(all)
	if err := writeCellsCSV(filepath.Join(out, "cells.csv"), cells); err != nil {
		return err
	}
	methods := summariseMethods(trials, "")
	if err := writeMethodsCSV(filepath.Join(out, "methods.csv"), methods); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(out, "plots"), 0o755); err != nil {
		return err
	}
	if err := writePlots(filepath.Join(out, "plots"), trials, cells); err != nil {
		return err
	}
	ladders := classify.LoadLadders(out)
	var pop *Population
	if p, err := LoadPopulation("experiments/population.yaml"); err == nil {
		pop = p
	}
	return writeReport(out, all, Summarise(trials), pop, ladders)
}

func writeCellsCSV(path string, cells []*CellStats) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"topology", "profiles", "method", "case", "trials", "successes", "rate", "wilson95_lo", "wilson95_hi",
		"model_predicts", "disagreeing_trials", "median_connect_ms", "classes", "model_reason"})
	for _, c := range cells {
		cs := c.Cell.Case
		if cs == "" {
			cs = "none"
		}
		_ = w.Write([]string{c.Cell.Topology, profilesString(c.Cell), c.Cell.Method, cs, strconv.Itoa(c.N), strconv.Itoa(c.Successes),
			f3(c.Rate()), f3(c.Lo), f3(c.Hi), strconv.FormatBool(c.Predicted), strconv.Itoa(c.Disagree),
			f1(stats.Quantile(c.ConnectMs, 0.5)), classesString(c.Classes), c.PredictedReason})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeMethodsCSV(path string, ms []*MethodStats) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"method", "trials", "successes", "rate", "wilson95_lo", "wilson95_hi", "median_connect_ms", "p95_connect_ms", "median_attempts_to_success"})
	for _, m := range ms {
		_ = w.Write([]string{m.Method, strconv.Itoa(m.N), strconv.Itoa(m.Successes), f3(float64(m.Successes) / float64(max(m.N, 1))),
			f3(m.Lo), f3(m.Hi), f1(m.MedianMs), f1(m.P95Ms), f1(m.MedianAttempts)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func f3(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
func f1(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

func profilesString(c spec.Cell) string {
	var ks []string
	for k := range c.Profiles {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, k+"="+c.Profiles[k])
	}
	return strings.Join(parts, " ")
}

func classesString(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
