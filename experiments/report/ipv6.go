package report

import (
	"fmt"

	"github.com/machsend/machsend/experiments/spec"
)

// ipv6Row is an IPv6 cell beside the IPv4 cell of the same profile pair
// and method (nil when the run has none).
type ipv6Row struct{ v6, v4 *CellStats }

// ipv6Rows pairs every unimpaired IPv6 cell with its IPv4 twin: the
// two-nat cell of the same method and profiles, in either order (the
// main matrix keeps one order of each unordered pair).
func ipv6Rows(cells []*CellStats) []ipv6Row {
	v4 := map[string]*CellStats{}
	for _, c := range cells {
		if c.Cell.Family == "" && c.Cell.Case == "" && c.Cell.Topology == "two-nat" {
			v4[pairKey(c.Cell.Profiles["nat-a"], c.Cell.Profiles["nat-b"], c.Cell.Method)] = c
		}
	}
	var rows []ipv6Row
	for _, c := range cells {
		if c.Cell.Family != spec.FamilyIPv6 || c.Cell.Case != "" {
			continue
		}
		a, b := c.Cell.Profiles["nat-a"], c.Cell.Profiles["nat-b"]
		twin := v4[pairKey(a, b, c.Cell.Method)]
		if twin == nil {
			twin = v4[pairKey(b, a, c.Cell.Method)]
		}
		rows = append(rows, ipv6Row{v6: c, v4: twin})
	}
	return rows
}

func pairKey(a, b, method string) string { return a + "|" + b + "|" + method }

// reportIPv6 sets TCP hole punching through the NAT nodes' IPv6
// firewalls beside the same devices' IPv4 NATs, cell by cell, each with
// the model's verdict.
func reportIPv6(p printer, cells []*CellStats) {
	rows := ipv6Rows(cells)
	if len(rows) == 0 {
		return
	}
	p("## IPv6 firewalls beside IPv4 NATs")
	p("")
	p("The same two dual-stack devices (topology two-nat6, the same path) with the peers and the server on IPv6 only: each NAT node routes IPv6 untranslated through a stateful firewall built from its profile's filtering knobs (`natlab/rules6.go`; RFC 6092's recommended behaviour is port-restricted-cone, its strict variant no-simultaneous-open, the resetting one rst-unsolicited), which `natlab check` verifies (The profiles as realised). The model predicts each IPv6 cell from the profile's firewall (`nat.Profile.Firewall6`: no translation, the same filtering). Beside each, the IPv4 cell of the same profiles and method from the main matrix (two-nat). STUNT #1 and NATBlaster forge IPv4 packets and are not run over IPv6.")
	p("")
	p("| profiles | method | IPv6 | IPv6 model | IPv4 | IPv4 model |")
	p("|---|---|---:|---|---:|---|")
	agree, n, twins, differ := 0, 0, 0, 0
	for _, r := range rows {
		v4, v4model := "-", "-"
		if r.v4 != nil {
			v4, v4model = fmt.Sprintf("%d/%d", r.v4.Successes, r.v4.N), verdict(r.v4.Predicted)
			twins++
			if (r.v4.Successes > 0) != (r.v6.Successes > 0) {
				differ++
			}
		}
		n += r.v6.N
		agree += r.v6.N - r.v6.Disagree
		p("| %s | %s | %d/%d | %s | %s | %s |", profilesString(r.v6.Cell), r.v6.Cell.Method, r.v6.Successes, r.v6.N, verdict(r.v6.Predicted), v4, v4model)
	}
	p("")
	p("The model agrees with %d of %d IPv6 trials. Of the %d cells with an IPv4 twin, %d differ in outcome (one succeeded at least once, the other never).", agree, n, twins, differ)
	p("")
}

func verdict(success bool) string {
	if success {
		return "connects"
	}
	return "fails"
}
