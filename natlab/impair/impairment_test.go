package impair_test

import (
	"errors"
	"testing"
	"time"

	"github.com/machsend/machsend/natlab/impair"
)

func TestParse(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name string
		in   string
		want impair.Impairment
		err  bool
	}{
		{"none", "none", impair.Impairment{}, false},
		{"empty", "", impair.Impairment{}, false},
		{"delay", "delay=20ms", impair.Impairment{Delay: 20 * ms}, false},
		{"all", "delay=20ms,jitter=2ms dist=pareto loss=0.5% burst=3 reorder=10% rate=50mbit",
			impair.Impairment{Delay: 20 * ms, Jitter: 2 * ms, Dist: "pareto", Loss: 0.005, Burst: 3, Reorder: 0.1, Rate: 50_000_000}, false},
		{"fraction", "loss=0.01", impair.Impairment{Loss: 0.01}, false},
		{"negative delay", "delay=-1ms", impair.Impairment{}, true},
		{"huge delay", "delay=1h", impair.Impairment{}, true},
		{"loss over 100", "loss=150%", impair.Impairment{}, true},
		{"unknown key", "latency=3ms", impair.Impairment{}, true},
		{"no value", "delay", impair.Impairment{}, true},
		{"twice", "delay=1ms delay=2ms", impair.Impairment{}, true},
		{"bad dist", "jitter=1ms dist=cauchy", impair.Impairment{}, true},
		{"dist without jitter", "dist=uniform", impair.Impairment{}, true},
		{"bad rate", "rate=fast", impair.Impairment{}, true},
		{"burst below 1", "loss=1% burst=0.5", impair.Impairment{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := impair.Parse(c.in)
			if c.err {
				if !errors.Is(err, impair.ErrInvalid) {
					t.Fatalf("Parse(%q) = %v, %v; want ErrInvalid", c.in, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			}
			// String round-trips.
			again, err := impair.Parse(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip of %q via %q = %+v, %v", c.in, got.String(), again, err)
			}
		})
	}
}

func FuzzParseImpairment(f *testing.F) {
	for _, s := range []string{"delay=20ms jitter=2ms", "loss=5% burst=3", "rate=10mbit", "reorder=10% delay=1s", "none"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		im, err := impair.Parse(s)
		if err != nil {
			return
		}
		again, err := impair.Parse(im.String())
		if err != nil {
			t.Fatalf("String() of a parsed impairment does not parse: %q -> %q: %v", s, im.String(), err)
		}
		if again.Delay != im.Delay || again.Jitter != im.Jitter || again.Rate != im.Rate {
			t.Fatalf("round trip changed %+v into %+v", im, again)
		}
	})
}
