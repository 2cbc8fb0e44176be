package model

import (
	"strconv"

	"github.com/machsend/machsend/nat"
)

// Describe says in a few words what kind of NAT a cheap check (mapping and
// allocation) found; send and get print it before they connect.
func Describe(mapping nat.Seen, preserving bool, delta int) string {
	switch {
	case mapping == nat.SeenNone:
		return "no NAT (public address)"
	case mapping == nat.SeenIndependent && preserving:
		return "NAT with endpoint-independent mapping, ports preserved"
	case mapping == nat.SeenIndependent:
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
func Expect(aMapping nat.Seen, aPredictable bool, bMapping nat.Seen, bPredictable bool) string {
	easy := nat.Seen.Easy
	switch {
	case aMapping == nat.SeenNone && bMapping == nat.SeenNone:
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
