package experiments

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/natlab/natlabtest"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/traversal"
)

// The cheap NAT probe that every send and get runs before punching
// observes its first port toward the server's two endpoints at once
// (traversal.ProbeNAT): whichever of the two SYNs a sequential NAT maps
// first, the allocation step it reports must be the profile's, and the
// hop count the one of the lab's path (host, its NAT, the core router,
// the server: three). Three sessions, so that both orders get a chance.
func TestProbeNATConcurrentObservations(t *testing.T) {
	natlabtest.RequireRoot(t)
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	p := labPeers(t, bin, "two-nat", nil, "nat-a=symmetric-sequential", "nat-b=eim-sequential")
	file := filepath.Join(t.TempDir(), "f.bin")
	if err := WriteRandomFile(file, 1<<16, 1); err != nil {
		t.Fatal(err)
	}
	want := map[string]traversal.NATInfo{
		"send": {Mapping: nat.SeenDependent, Delta: 1, Hops: 3},   // symmetric-sequential: delta 1
		"get":  {Mapping: nat.SeenIndependent, Delta: 2, Hops: 3}, // eim-sequential: delta 2
	}
	for i := range 3 {
		snd, link, err := p.Send(p.A, []string{file}, "--method", "relay")
		if err != nil {
			t.Fatal(err)
		}
		get, err := p.Get(p.B, link, t.TempDir(), "--method", "relay")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]session.Event{"get": waitOK(t, get, "get", time.Minute), "send": waitOK(t, snd, "send", time.Minute)}
		for side, evs := range got {
			var info *traversal.NATInfo
			for _, e := range evs {
				if e.Kind == session.KindNAT {
					info = e.NAT
				}
			}
			w := want[side]
			if info == nil || info.Mapping != w.Mapping || info.Delta != w.Delta || info.Hops != w.Hops {
				t.Errorf("session %d, %s: probe found %+v; want mapping %s, delta %d, %d hops", i, side, info, w.Mapping, w.Delta, w.Hops)
			}
		}
	}
}
