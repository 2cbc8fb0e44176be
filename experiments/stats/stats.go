// Package stats holds the statistics the reports use: Wilson score
// intervals for success rates and interpolated quantiles.
package stats

import (
	"math"
	"sort"
)

// Wilson returns the Wilson score interval for k successes in n trials at
// confidence z (1.96 for 95%).
func Wilson(k, n int, z float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	p := float64(k) / float64(n)
	nf := float64(n)
	den := 1 + z*z/nf
	center := (p + z*z/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / den
	return math.Max(0, center-half), math.Min(1, center+half)
}

// Mean is the arithmetic mean of xs (NaN when empty).
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// Quantile returns the q-quantile (0..1) of xs by linear interpolation.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// FisherExact is the two-sided p-value of Fisher's exact test for the 2x2
// table [[a, b], [c, d]] (successes and failures of two samples): the
// probability, with the margins fixed, of a table at most as likely as
// this one.
func FisherExact(a, b, c, d int) float64 {
	if a < 0 || b < 0 || c < 0 || d < 0 {
		return math.NaN()
	}
	r1, c1, n := a+b, a+c, a+b+c+d
	if n == 0 {
		return 1
	}
	lf := func(k int) float64 { v, _ := math.Lgamma(float64(k) + 1); return v }
	logP := func(x int) float64 { // P(top-left = x) with the margins fixed
		return lf(r1) + lf(n-r1) + lf(c1) + lf(n-c1) - lf(n) - lf(x) - lf(r1-x) - lf(c1-x) - lf(n-r1-c1+x)
	}
	observed := logP(a)
	p := 0.0
	for x := max(0, r1+c1-n); x <= min(r1, c1); x++ {
		if lp := logP(x); lp <= observed+1e-9 {
			p += math.Exp(lp)
		}
	}
	return math.Min(1, p)
}
