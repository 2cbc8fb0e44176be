package natlab

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/machsend/machsend/nat"
)

// TestFirewall6Knobs: each filtering knob of a profile turns into its
// IPv6 firewall rule, and a node whose inside is IPv4 only gets no IPv6
// table.
func TestFirewall6Knobs(t *testing.T) {
	ifs := natIfaces{WAN: "wan", Public: netip.MustParseAddr("203.0.113.2"), LANs: []string{"lan"},
		LANNets: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}, V6: true}
	base, err := nat.Load("port-restricted-cone")
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(p *nat.Profile)) *nat.Profile { p := *base; f(&p); return &p }
	for _, tc := range []struct {
		name    string
		p       *nat.Profile
		want    []string
		notWant []string
	}{
		{"recommended", base, []string{"table ip6 natlab6", "ct direction reply accept", `iifname "wan" drop`},
			[]string{"reject", "@eif6", "@adf6", "ct direction reply drop"}},
		{"endpoint-independent", with(func(p *nat.Profile) { p.Filtering = nat.EndpointIndependent }),
			[]string{"update @eif6 { ip6 saddr . tcp sport }", "ip6 daddr . tcp dport @eif6 accept"}, []string{"@adf6"}},
		{"address-dependent", with(func(p *nat.Profile) { p.Filtering = nat.AddressDependent }),
			[]string{"update @adf6 { ip6 saddr . tcp sport . ip6 daddr }", "ip6 daddr . tcp dport . ip6 saddr @adf6 accept"}, []string{"@eif6"}},
		{"reset", with(func(p *nat.Profile) { p.UnsolicitedSYN = nat.SYNRST }), []string{`tcp flags & (syn | ack) == syn reject with tcp reset`}, nil},
		{"icmp admin", with(func(p *nat.Profile) { p.UnsolicitedSYN = nat.SYNICMPAdmin }), []string{"reject with icmpv6 type admin-prohibited"}, nil},
		{"no simultaneous open", with(func(p *nat.Profile) { p.SimultaneousOpen = nat.SimDrop }), []string{"syn ct direction reply drop"}, nil},
		{"time-exceeded dropped", with(func(p *nat.Profile) { p.ICMPTimeExceeded = nat.Drop }), []string{"icmpv6 type time-exceeded drop"}, nil},
	} {
		got := compile(tc.p, ifs).Ruleset
		v6 := got[strings.Index(got, "table ip6"):]
		for _, w := range tc.want {
			if !strings.Contains(v6, w) {
				t.Errorf("%s: the IPv6 table lacks %q:\n%s", tc.name, w, v6)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(v6, w) {
				t.Errorf("%s: the IPv6 table has %q:\n%s", tc.name, w, v6)
			}
		}
		// The reply-direction drop comes before the accept it overrides.
		if strings.Contains(v6, "direction reply drop") && strings.Index(v6, "direction reply drop") > strings.Index(v6, "direction reply accept") {
			t.Errorf("%s: simultaneous open is accepted before it is dropped:\n%s", tc.name, v6)
		}
	}
	ifs.V6 = false
	if got := compile(base, ifs).Ruleset; strings.Contains(got, "ip6") {
		t.Errorf("an IPv4-only inside got IPv6 rules:\n%s", got)
	}
	if got := compile(nat.Public("none"), natIfaces{V6: true}).Ruleset; got != "" {
		t.Errorf("a node without NAT got rules:\n%s", got)
	}
}
