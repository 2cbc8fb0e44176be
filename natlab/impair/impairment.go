package impair

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every impairment parsing or validation error.
var ErrInvalid = errors.New("invalid impairment")

// Delay distributions for jitter.
const (
	DistNormal  = "normal"  // delay + N(0, jitter²), truncated at 0
	DistUniform = "uniform" // delay ± jitter, uniformly
	DistPareto  = "pareto"  // heavy tail (shape 3) with standard deviation jitter, mean delay
)

// Impairment is what happens to packets leaving a node on one network (one
// direction of a link): the netem vocabulary, realised without netem (absent
// from this kernel). Delay, jitter, loss and reordering are applied by the
// lab's userspace queue (NFQUEUE with held verdicts, see impair_engine.go);
// the rate limit by a tbf qdisc on the interface, after the queue. The zero
// value impairs nothing.
type Impairment struct {
	// Delay is the one-way delay added to every packet.
	Delay time.Duration `json:"delay,omitempty"`
	// Jitter is the standard deviation (normal, pareto) or half-width
	// (uniform) of the delay's variation.
	Jitter time.Duration `json:"jitter,omitempty"`
	// Dist is the jitter distribution (DistNormal when empty).
	Dist string `json:"dist,omitempty"`
	// Loss is the long-run fraction of packets dropped, 0..1.
	Loss float64 `json:"loss,omitempty"`
	// Burst is the mean length of a loss burst (Gilbert model); 0 or 1
	// means independent (Bernoulli) losses.
	Burst float64 `json:"burst,omitempty"`
	// Reorder is the fraction of packets sent at once, overtaking the
	// delayed ones (netem's "reorder"). Without it packets keep their order
	// even under jitter.
	Reorder float64 `json:"reorder,omitempty"`
	// Rate limits the interface's egress in bits per second (tbf).
	Rate uint64 `json:"rate_bps,omitempty"`
}

// Zero reports whether the impairment does nothing.
func (im Impairment) Zero() bool { return im == Impairment{} }

// Queued reports whether the impairment needs the userspace queue (anything
// but a rate limit).
func (im Impairment) Queued() bool {
	return im.Delay > 0 || im.Jitter > 0 || im.Loss > 0 || im.Reorder > 0
}

// String renders the impairment in the syntax Parse reads.
func (im Impairment) String() string {
	if im.Zero() {
		return "none"
	}
	var parts []string
	if im.Delay > 0 {
		parts = append(parts, "delay="+im.Delay.String())
	}
	if im.Jitter > 0 {
		parts = append(parts, "jitter="+im.Jitter.String())
		if im.Dist != "" && im.Dist != DistNormal {
			parts = append(parts, "dist="+im.Dist)
		}
	}
	if im.Loss > 0 {
		parts = append(parts, "loss="+pct(im.Loss))
		if im.Burst > 1 {
			parts = append(parts, "burst="+strconv.FormatFloat(im.Burst, 'g', -1, 64))
		}
	}
	if im.Reorder > 0 {
		parts = append(parts, "reorder="+pct(im.Reorder))
	}
	if im.Rate > 0 {
		parts = append(parts, "rate="+FormatRate(im.Rate))
	}
	return strings.Join(parts, " ")
}

func pct(f float64) string { return strconv.FormatFloat(f*100, 'g', 6, 64) + "%" }

// FormatRate renders bits per second as ParseRate reads them.
func FormatRate(bps uint64) string {
	switch {
	case bps%1_000_000_000 == 0:
		return fmt.Sprintf("%dgbit", bps/1_000_000_000)
	case bps%1_000_000 == 0:
		return fmt.Sprintf("%dmbit", bps/1_000_000)
	case bps%1_000 == 0:
		return fmt.Sprintf("%dkbit", bps/1_000)
	}
	return fmt.Sprintf("%dbit", bps)
}

// ParseRate reads a rate such as "50mbit", "1gbit", "800kbit" or "1000000"
// (bits per second).
func ParseRate(s string) (uint64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		m      uint64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*float64(mult) > 1e12 {
		return 0, fmt.Errorf("rate %q: want a number with kbit, mbit or gbit, up to 1000gbit", s)
	}
	return uint64(v * float64(mult)), nil
}

// ParseFraction reads "0.5%" or "0.005" as 0.005; it must lie in [0, 1].
func ParseFraction(s string) (float64, error) {
	s = strings.TrimSpace(s)
	div := 1.0
	if strings.HasSuffix(s, "%") {
		s, div = strings.TrimSuffix(s, "%"), 100
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a fraction (0.5%% or 0.005)", s)
	}
	v /= div
	if v < 0 || v > 1 {
		return 0, fmt.Errorf("%q is outside 0..100%%", s)
	}
	return v, nil
}

// MaxDelay bounds a configured delay or jitter: held packets occupy the
// queue, and a longer hold is a lab mistake, not a network.
const MaxDelay = 10 * time.Second

// Parse reads an impairment written as space- or comma-separated
// key=value pairs: delay=20ms jitter=2ms dist=normal loss=0.5% burst=3
// reorder=10% rate=50mbit. "none" or "" is the zero impairment.
func Parse(s string) (Impairment, error) {
	var im Impairment
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return im, nil
	}
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return im, fmt.Errorf("%w: %q: want key=value", ErrInvalid, f)
		}
		if seen[k] {
			return im, fmt.Errorf("%w: %s given twice", ErrInvalid, k)
		}
		seen[k] = true
		var err error
		switch k {
		case "delay", "jitter":
			var d time.Duration
			d, err = time.ParseDuration(v)
			if err == nil && (d < 0 || d > MaxDelay) {
				err = fmt.Errorf("%s outside 0..%s", v, MaxDelay)
			}
			if k == "delay" {
				im.Delay = d
			} else {
				im.Jitter = d
			}
		case "dist":
			switch v {
			case DistNormal, DistUniform, DistPareto:
				im.Dist = v
			default:
				err = fmt.Errorf("%q (want normal, uniform or pareto)", v)
			}
		case "loss":
			im.Loss, err = ParseFraction(v)
		case "reorder":
			im.Reorder, err = ParseFraction(v)
		case "burst":
			im.Burst, err = strconv.ParseFloat(v, 64)
			if err == nil && (im.Burst < 1 || im.Burst > 1000 || math.IsNaN(im.Burst)) {
				err = fmt.Errorf("%q outside 1..1000 packets", v)
			}
		case "rate":
			im.Rate, err = ParseRate(v)
		default:
			return im, fmt.Errorf("%w: unknown key %q (delay, jitter, dist, loss, burst, reorder, rate)", ErrInvalid, k)
		}
		if err != nil {
			return im, fmt.Errorf("%w: %s: %v", ErrInvalid, k, err)
		}
	}
	if im.Loss == 1 && im.Burst > 1 {
		return im, fmt.Errorf("%w: burst needs loss below 100%%", ErrInvalid)
	}
	if im.Dist != "" && im.Jitter == 0 {
		return im, fmt.Errorf("%w: dist without jitter", ErrInvalid)
	}
	return im, nil
}

// MustParse is Parse for literals in code; it panics on
// an error, so never use it on input.
func MustParse(s string) Impairment {
	im, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return im
}
