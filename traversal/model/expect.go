package model

import (
	"strconv"

	"github.com/machsend/machsend/nat"
)

// Mapping classes a client sees from the cheap check (traversal.ProbeNAT):
// no NAT, one mapping for every destination, or one per destination.
const (
	MappingNone      = "none"
	MappingDependent = "endpoint-dependent"
)

// Describe says in a few words what kind of NAT a cheap check (mapping and
// allocation) found; send and get print it before they connect.
func Describe(mapping string, preserving bool, delta int) string {
	switch {
	case mapping == MappingNone:
		return "no NAT (public address)"
	case mapping == string(nat.EndpointIndependent) && preserving:
		return "NAT with endpoint-independent mapping, ports preserved"
	case mapping == string(nat.EndpointIndependent):
		return "NAT with endpoint-independent mapping"
	case delta != 0:
		return "symmetric NAT, sequential ports (step " + strconv.Itoa(delta) + ")"
	case mapping != "":
		return "symmetric NAT, unpredictable ports"
	}
	return "NAT of unknown kind"
}

// Expect says which path to expect between two sides described by cheap
// checks: each side's mapping class and whether its next port is
// predictable (sequential allocation).
func Expect(aMapping string, aPredictable bool, bMapping string, bPredictable bool) string {
	easy := func(m string) bool { return m == MappingNone || m == string(nat.EndpointIndependent) }
	switch {
	case aMapping == MappingNone && bMapping == MappingNone:
		return "both sides have public addresses: a direct connection is expected"
	case easy(aMapping) && easy(bMapping):
		return "both NATs look endpoint-independent: a direct connection by hole punching is expected"
	case (easy(aMapping) || aPredictable) && (easy(bMapping) || bPredictable):
		return "one side allocates a port per destination, predictably: hole punching with port prediction is expected"
	case easy(aMapping) || easy(bMapping):
		return "one side's ports are unpredictable: hole punching works only if the other side admits unknown peers, otherwise the relay"
	}
	return "both sides' ports are unpredictable: the relay is expected"
}
