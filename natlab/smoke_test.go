package natlab

import (
	"context"
	"testing"
	"time"
)

func TestSmokeUp(t *testing.T) {
	topo, err := LoadTopology("two-nat")
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadProfile("full-cone")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l, err := Up(context.Background(), Options{Name: "smoke", Topology: topo, Default: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("up in %v", time.Since(start))
	s, _ := l.Rules("nat-a")
	t.Log(s)
	start = time.Now()
	l.Close()
	t.Logf("down in %v", time.Since(start))
}
