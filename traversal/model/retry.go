package model

import (
	"fmt"
	"time"
)

// Timing of the traversal package that the model's race rules depend on
// (traversal uses these same values).
const (
	// P2PRetry is how long p2pnat waits after a connect is refused or
	// reset before it connects again from the same port.
	P2PRetry = 100 * time.Millisecond
	// AttemptBudget is how long one punching attempt may take.
	AttemptBudget = 3 * time.Second
)

// refusalLoop is how long after a side's SYN leaves its host the host
// learns that the far NAT reset it: the side's NAT egress (its delay, plus
// the offset when it is the late side: the lab realises an offset as an
// extra egress delay on the late side's NAT for the whole attempt), the
// core to the far NAT, and the RST back from the core (a NAT's own RST
// leaves without its egress delay).
func (p Path) refusalLoop(a bool) time.Duration {
	own, far, extra := p.DelayA, p.DelayB, max(p.Offset, 0)
	if !a {
		own, far, extra = p.DelayB, p.DelayA, max(-p.Offset, 0)
	}
	return 2*own + far + extra
}

// RetryDrift is how much longer A's refusal loop is than B's: when both
// NATs reset early SYNs and both hosts retry a fixed time after each
// refusal, the moment A's SYN leaves moves by this much against B's every
// round.
func (p Path) RetryDrift() time.Duration { return p.refusalLoop(true) - p.refusalLoop(false) }

// RetriesCross reports whether SYNs refused outside the crossing window
// come to cross on a later retry within the attempt, and after about how
// many rounds. The phase between the two sides' SYNs moves by RetryDrift a
// round; a drift no wider than the window (DelayA+DelayB) cannot step over
// it, so the phase enters it within one retry period's worth of rounds.
// Equal loops (no drift) stay in lockstep and never cross; a drift wider
// than the window may step over it, and the model does not claim it.
func (p Path) RetriesCross() (bool, int) {
	d, w := p.RetryDrift().Abs(), p.DelayA+p.DelayB
	if d == 0 || d > w {
		return false, 0
	}
	period := P2PRetry + max(p.refusalLoop(true), p.refusalLoop(false))
	rounds := int((period-w+d-1)/d) + 1
	return time.Duration(rounds)*period <= AttemptBudget, rounds
}

// retryWhy says what the retries do outside the window, for a reason.
func (p Path) retryWhy() string {
	if ok, n := p.RetriesCross(); ok {
		return fmt.Sprintf("the two sides' refusal-and-retry loops differ by %v a round, so the retried SYNs drift into the crossing window within about %d rounds", p.RetryDrift().Abs(), n)
	}
	if p.RetryDrift() == 0 {
		return "the two sides' refusal-and-retry loops are equally long, so the retries stay in lockstep and never cross"
	}
	return fmt.Sprintf("the retry loops differ by %v a round, more than the %v window, so the retries may step over it within the attempt", p.RetryDrift().Abs(), p.DelayA+p.DelayB)
}
