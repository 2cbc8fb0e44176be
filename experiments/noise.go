package experiments

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/natlab"
)

// DefaultNoiseBound is the scheduling noise a trial may show before its
// timings are left out and the runner runs fewer labs at once.
const DefaultNoiseBound = 5 * time.Millisecond

// noiseProbes is how many handshakes measure a trial's path.
const noiseProbes = 3

// measureNoise times TCP handshakes from peer A to the rendezvous server
// before the peers start, and returns them (ms) and how far their median
// exceeds what the conditions configure: the lab's own scheduling noise
// (the delay queue and the peers run in processes that share the CPUs).
// The median, not the slowest: one late handshake is a hiccup that a
// trial's own retransmissions absorb; a late median is a busy machine.
func measureNoise(ctx context.Context, lab *natlab.Lab, peers *LabPeers, ic *spec.ImpairCase) (rtts []float64, noise float64, err error) {
	a, err := lab.Node(peers.A)
	if err != nil {
		return nil, 0, err
	}
	for i := 0; i < noiseProbes; i++ {
		d, err := handshake(ctx, a, peers.Server)
		if err != nil {
			return rtts, 0, err
		}
		rtts = append(rtts, float64(d.Microseconds())/1000)
	}
	want := float64(ic.ServerRTT().Microseconds()) / 1000
	sorted := slices.Clone(rtts)
	slices.Sort(sorted)
	return rtts, max(0, sorted[len(sorted)/2]-want), nil
}

// handshake is the time one TCP connect from n to dst takes.
func handshake(ctx context.Context, n *natlab.Node, dst netip.AddrPort) (time.Duration, error) {
	var d time.Duration
	err := natlab.Do(n.Handle, func() error {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		start := time.Now()
		c, err := (&net.Dialer{}).DialContext(dctx, sockopt.Network(dst), dst.String())
		d = time.Since(start)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return d, err
}

// limiter bounds how many trials run at once, between 1 and max: a trial
// whose noise exceeds the bound lowers the limit by a quarter (at least
// one), and quietRun quiet trials in a row raise it by one.
type limiter struct {
	mu      sync.Mutex
	cond    *sync.Cond
	active  int
	limit   int
	max     int
	quiet   int
	lowest  int
	changes int
}

const quietRun = 5

func newLimiter(max int) *limiter {
	l := &limiter{limit: max, max: max, lowest: max}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *limiter) acquire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.active >= l.limit {
		l.cond.Wait()
	}
	l.active++
}

// release ends a trial and adapts the limit to whether it was noisy.
func (l *limiter) release(noisy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	switch {
	case noisy && l.limit > 1:
		l.limit -= max(1, l.limit/4)
		l.quiet = 0
		l.changes++
		l.lowest = min(l.lowest, l.limit)
	case noisy:
		l.quiet = 0
	default:
		if l.quiet++; l.quiet >= quietRun && l.limit < l.max {
			l.limit++
			l.quiet = 0
			l.changes++
		}
	}
	l.cond.Broadcast()
}
