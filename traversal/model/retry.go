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
	// AttemptBudget is how long one punching attempt may take when the
	// round trip between the peers is unknown (Path.Budget's default).
	AttemptBudget = 3 * time.Second
	// MinAttemptBudget and MaxAttemptBudget bound AttemptBudgetFor. The
	// floor is the budget the experiment matrix gives every attempt (every
	// method connects within it in the lab where it can); the ceiling
	// keeps a path of seconds from holding up the next method forever.
	MinAttemptBudget = 2 * time.Second
	MaxAttemptBudget = 10 * time.Second
	// SYNRetransmit is when a host sends an unanswered SYN again (RFC
	// 6298's initial RTO, Linux's TCP_TIMEOUT_INIT): a first SYN the far
	// NAT dropped in silence crosses on this one.
	SYNRetransmit = time.Second
	// budgetSlack absorbs a loaded host's scheduling.
	budgetSlack = 500 * time.Millisecond
	// retryOverhead is what a host adds to each refusal-and-retry round
	// besides the path and P2PRetry (measured in the sweep's captures:
	// rounds of 131 and 147 ms for loops of 30 and 46 ms).
	retryOverhead = time.Millisecond
)

// AttemptBudgetFor is traversal's budget for one punching attempt when
// the round trip between the peers is about rtt (0 or less: unknown, and
// AttemptBudget): one SYN retransmission (a first SYN dropped in silence
// by the far NAT crosses on the second) and four round trips (the SYN's
// way and its SYN-ACK, the authentication's exchange, and one more for a
// refused SYN's retry), plus slack, within [MinAttemptBudget,
// MaxAttemptBudget]. Traversal estimates rtt as the sum of the two
// peers' round trips to the server, which bounds the path between them
// through the server; both peers compute the same budget from the same
// two numbers.
func AttemptBudgetFor(rtt time.Duration) time.Duration {
	if rtt <= 0 {
		return AttemptBudget
	}
	return min(max(SYNRetransmit+4*rtt+budgetSlack, MinAttemptBudget), MaxAttemptBudget)
}

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
// come to cross on a later retry within the attempt, and in which of A's
// rounds. A reopened entry is a new conntrack entry (conntrack deletes a
// closed one and starts again), made after the egress delay like the
// first, so a pair of retried SYNs crosses under the same condition as the
// first pair (Crossing) with the offset between their departures. A's
// k-th SYN leaves k retry periods (P2PRetry plus its refusal loop) after
// its first, B's j-th likewise with B's period; the model looks for a pair
// whose offset falls inside the window before the attempt's budget ends.
// Equal periods keep the first offset: lockstep, never crossing.
func (p Path) RetriesCross() (bool, int) {
	pa, pb := P2PRetry+retryOverhead+p.refusalLoop(true), P2PRetry+retryOverhead+p.refusalLoop(false)
	budget := p.Budget
	if budget <= 0 {
		budget = AttemptBudget
	}
	for k := 1; time.Duration(k)*pa < budget; k++ {
		for j := 0; time.Duration(j)*pb < budget; j++ {
			q := p
			q.Offset = p.Offset + time.Duration(k)*pa - time.Duration(j)*pb
			if q.Crossing() {
				return true, k + 1
			}
		}
	}
	for j := 1; time.Duration(j)*pb < budget; j++ {
		q := p
		q.Offset = p.Offset - time.Duration(j)*pb
		if q.Crossing() {
			return true, 1
		}
	}
	return false, 0
}

// retriesFirst reports whether side a (or else B), its early SYN's peer
// refused by a's NAT and its own SYN refused in turn, retries before the
// peer's first retried SYN reaches a's NAT: a's refusal loop against the
// peer's loop plus that SYN's way to a's NAT (the peer's egress, with its
// offset if late, and the core's egress toward a).
func (p Path) retriesFirst(a bool) bool {
	own, other, late := p.DelayA, p.DelayB, max(-p.Offset, 0)
	if !a {
		own, other, late = p.DelayB, p.DelayA, max(p.Offset, 0)
	}
	return p.refusalLoop(a) < p.refusalLoop(!a)+other+late+own
}

// retryWhy says what the retries do outside the window, for a reason.
func (p Path) retryWhy() string {
	if ok, n := p.RetriesCross(); ok {
		return fmt.Sprintf("the two sides' refusal-and-retry loops differ by %v a round, so a pair of retried SYNs crosses by A's round %d", p.RetryDrift().Abs(), n)
	}
	if p.RetryDrift() == 0 {
		return "the two sides' refusal-and-retry loops are equally long, so the retries stay in lockstep and never cross"
	}
	return fmt.Sprintf("the retry loops differ by %v a round, and no pair of retried SYNs falls inside the window within the attempt", p.RetryDrift().Abs())
}
