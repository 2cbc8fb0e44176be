package nat

import (
	"fmt"
	"net/netip"
)

// Seen is the mapping behaviour one client can tell from a rendezvous
// server with two addresses: what port prediction and the expected path
// need. It is coarser than Dependence (it cannot tell address- from
// address-and-port-dependent without the server's alternate port).
type Seen string

// Seen values.
const (
	SeenNone        Seen = "none" // the server sees an address of this host
	SeenIndependent Seen = Seen(EndpointIndependent)
	SeenDependent   Seen = "endpoint-dependent"
)

// Easy reports whether the mapping toward the peer is the one the server
// saw (no NAT, or endpoint-independent mapping).
func (s Seen) Easy() bool { return s == SeenNone || s == SeenIndependent }

// MappingObservation is one local port as the rendezvous server's endpoints
// saw it; an endpoint that could not be observed is the zero AddrPort.
type MappingObservation struct {
	Local     uint16
	Primary   netip.AddrPort // the server's primary endpoint
	Secondary netip.AddrPort // another address of the server
	Alternate netip.AddrPort // another port of the primary address
}

// Classify returns the mapping behaviour the observation shows (Unknown
// when it cannot tell), what a client sees of it, and the evidence in words.
// Both natcheck and traversal's NAT probe decide with it.
func (o MappingObservation) Classify() (Dependence, Seen, string) {
	ev := fmt.Sprintf("port %d -> %s (primary)", o.Local, o.Primary)
	if o.Alternate.IsValid() {
		ev += fmt.Sprintf(", %s (alternate port)", o.Alternate)
	}
	if o.Secondary.IsValid() {
		ev += fmt.Sprintf(", %s (secondary address)", o.Secondary)
	}
	switch {
	case !o.Secondary.IsValid():
		return Unknown, SeenIndependent, ev + "; the server has no second address"
	case o.Primary == o.Secondary:
		return EndpointIndependent, SeenIndependent, ev + ": one mapping for every destination"
	case !o.Alternate.IsValid():
		return Unknown, SeenDependent, ev + ": endpoint-dependent, but the server has no alternate port to tell address- from address-and-port-dependent"
	case o.Primary == o.Alternate:
		return AddressDependent, SeenDependent, ev + ": same mapping for another port of the same address, a new one for another address"
	default:
		return AddressPortDependent, SeenDependent, ev + ": a new mapping for every destination port"
	}
}

// maxStep bounds the allocation step that counts as sequential: a larger
// constant step is more likely chance than a counter.
const maxStep = 64

// ClassifyAllocation decides port allocation from successive fresh local
// ports and the public ports the server saw for them, in the order they
// were opened (at least two). delta is the constant step between
// successive public ports when allocation is sequential, else 0.
func ClassifyAllocation(local, mapped []uint16) (a Allocation, delta int, evidence string) {
	evidence = fmt.Sprintf("local %v -> public %v", local, mapped)
	if len(mapped) < 2 || len(local) != len(mapped) {
		return Unknown, 0, evidence + ": too few observations"
	}
	preserved := true
	for i := range local {
		preserved = preserved && local[i] == mapped[i]
	}
	if preserved {
		return Preserve, 0, evidence + ": every local port kept"
	}
	if d, ok := Step(mapped); ok {
		return Sequential, d, evidence + fmt.Sprintf(": each new mapping %+d from the last", d)
	}
	return Random, 0, evidence + ": no pattern"
}

// Step returns the constant step between successive ports, if there is
// one that is non-zero and smaller than maxStep in size.
func Step(ports []uint16) (int, bool) {
	if len(ports) < 2 {
		return 0, false
	}
	d := int(ports[1]) - int(ports[0])
	if d == 0 || d <= -maxStep || d >= maxStep {
		return 0, false
	}
	for i := 2; i < len(ports); i++ {
		if int(ports[i])-int(ports[i-1]) != d {
			return 0, false
		}
	}
	return d, true
}
