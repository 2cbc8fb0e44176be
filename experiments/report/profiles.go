package report

import (
	"path/filepath"
	"strings"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/natlab/check"
)

// ipv6Knobs are the knobs natlab check probes again over IPv6, in the
// order the table shows them.
var ipv6Knobs = []string{"filtering (IPv6)", "unsolicited-syn (IPv6)", "simultaneous-open (IPv6)", "firewall (IPv6)"}

// reportProfiles summarises profiles.json (`natlab check --all --json`,
// run by make experiment): every built-in profile probed knob by knob,
// and what its IPv6 firewall did.
func reportProfiles(p printer, out string) {
	var reps []check.Report
	if !spec.ReadJSON(filepath.Join(out, "profiles.json"), &reps) || len(reps) == 0 {
		return
	}
	knobs, bad := 0, 0
	for _, r := range reps {
		for _, x := range r.Results {
			knobs++
			if !x.OK {
				bad++
			}
		}
	}
	p("## The profiles as realised")
	p("")
	p("`natlab check --all` brought every built-in profile up in its check lab (dual-stack) and probed it knob by knob: %d profiles, %d knob readings, %d of them differing from the profile (`profiles.json` has each reading's evidence). IPv6 has no NAT here: a NAT node routes it untranslated through a stateful firewall built from the same profile's filtering knobs, and the check probes those again over IPv6. What each profile's IPv6 firewall did (observed; a mark where it differs from the profile):", len(reps), knobs, bad)
	p("")
	p("| profile | IPv4 knobs as configured | IPv6 filtering | IPv6 unsolicited SYN | IPv6 simultaneous open |")
	p("|---|---|---|---|---|")
	for _, r := range reps {
		ok4, n4 := 0, 0
		seen := map[string]check.Result{}
		for _, x := range r.Results {
			if strings.HasSuffix(x.Knob, " (IPv6)") {
				seen[x.Knob] = x
				continue
			}
			n4++
			if x.OK {
				ok4++
			}
		}
		cell := func(knob string) string {
			x, ok := seen[knob]
			switch {
			case !ok:
				return "-"
			case !x.OK:
				return x.Observed + " ✗ (profile: " + x.Configured + ")"
			}
			return x.Observed
		}
		if fw, ok := seen["firewall (IPv6)"]; ok { // a host without NAT: no firewall either
			p("| %s | %d of %d | none (%s) | - | - |", r.Profile, ok4, n4, fw.Observed)
			continue
		}
		p("| %s | %d of %d | %s | %s | %s |", r.Profile, ok4, n4, cell(ipv6Knobs[0]), cell(ipv6Knobs[1]), cell(ipv6Knobs[2]))
	}
	p("")
}
