// Package names holds the naming rule shared by natlab's profiles and
// topologies and by machsend natcheck, which writes profiles without
// linking the lab: lower-case letters, digits and '-', at most 40.
package names

// Valid reports whether s is a valid profile, topology, node or network name.
func Valid(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
