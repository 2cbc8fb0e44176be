package stats

import (
	"math"
	"testing"
)

// Reference values from Wilson (1927) / Newcombe (1998), Table I, and R's
// binom::binom.wilson.
func TestWilson(t *testing.T) {
	tests := []struct {
		name   string
		k, n   int
		lo, hi float64
	}{
		{"81 of 263", 81, 263, 0.2553, 0.3662},
		{"15 of 148", 15, 148, 0.0624, 0.1605},
		{"0 of 20", 0, 20, 0, 0.1611},
		{"20 of 20", 20, 20, 0.8389, 1},
		{"5 of 10", 5, 10, 0.2366, 0.7634},
		{"no trials", 0, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := Wilson(tt.k, tt.n, 1.96)
			if math.Abs(lo-tt.lo) > 5e-4 || math.Abs(hi-tt.hi) > 5e-4 {
				t.Errorf("Wilson(%d, %d) = [%.4f, %.4f], want [%.4f, %.4f]", tt.k, tt.n, lo, hi, tt.lo, tt.hi)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 3, 2, 4}
	for _, tt := range []struct{ q, want float64 }{{0, 1}, {0.5, 3}, {1, 5}, {0.25, 2}, {0.95, 4.8}} {
		if got := Quantile(xs, tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("quantile of nothing")
	}
}

// Values checked against R's fisher.test.
func TestFisherExact(t *testing.T) {
	cases := []struct {
		a, b, c, d int
		p          float64
	}{
		{10, 0, 10, 0, 1},
		{10, 0, 1, 9, 0.0001191},
		{3, 1, 1, 3, 0.4857},
		{1, 9, 11, 3, 0.002759},
		{7, 3, 4, 6, 0.3698},
		{0, 0, 0, 0, 1},
	}
	for _, c := range cases {
		if got := FisherExact(c.a, c.b, c.c, c.d); math.Abs(got-c.p) > 1e-3*max(1, c.p*10) {
			t.Errorf("FisherExact(%d,%d,%d,%d) = %.6f, want %.6f", c.a, c.b, c.c, c.d, got, c.p)
		}
	}
}

func TestMean(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{[]float64{1, 2, 3}, 2}, {[]float64{5}, 5}, {[]float64{-1, 1}, 0}} {
		if got := Mean(c.xs); got != c.want {
			t.Errorf("Mean(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
	if !math.IsNaN(Mean(nil)) {
		t.Error("the mean of nothing is a number")
	}
}
