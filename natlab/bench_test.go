package natlab_test

import (
	"context"
	"sort"
	"testing"

	"github.com/machsend/machsend/nat"

	"time"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/natlabtest"
)

// BenchmarkTwoNATUpDown measures bringing the two-nat topology up (with the
// linux-default profile on both NATs) and tearing it down again.
func BenchmarkTwoNATUpDown(b *testing.B) {
	natlabtest.RequireRoot(b)
	topo, err := natlab.LoadTopology("two-nat")
	if err != nil {
		b.Fatal(err)
	}
	p, err := nat.Load("linux-default")
	if err != nil {
		b.Fatal(err)
	}
	var ups, downs, totals []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		l, err := natlab.Up(context.Background(), natlab.Options{Topology: topo, Default: p})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		ups, downs, totals = append(ups, t1.Sub(t0)), append(downs, t2.Sub(t1)), append(totals, t2.Sub(t0))
	}
	b.ReportMetric(median(ups).Seconds()*1000, "up-ms")
	b.ReportMetric(median(downs).Seconds()*1000, "down-ms")
	b.ReportMetric(median(totals).Seconds()*1000, "median-ms")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
