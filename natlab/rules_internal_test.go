package natlab

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/machsend/machsend/nat"
)

func TestCompileKnobs(t *testing.T) {
	ifs := natIfaces{WAN: "wan", Public: netip.MustParseAddr("203.0.113.2"), LANs: []string{"lan"},
		LANNets: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}}
	base, err := nat.Load("port-restricted-cone")
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(p *nat.Profile)) *nat.Profile { p := *base; f(&p); return &p }
	tests := []struct {
		name    string
		p       *nat.Profile
		want    []string
		notWant []string
		sysctl  map[string]string
		mapper  bool
	}{
		{name: "port-restricted", p: base, want: []string{`oifname "wan" masquerade`, "ct state invalid drop", `iifname "wan" ct direction original ct status & dnat == 0 drop`, `iifname "wan" meta l4proto tcp drop`},
			notWant: []string{"dnat ip to", "fully-random", "numgen"}, sysctl: map[string]string{"net/netfilter/nf_conntrack_tcp_be_liberal": "1"}},
		{name: "full cone filtering", p: with(func(p *nat.Profile) { p.Filtering = nat.EndpointIndependent }),
			want: []string{`iifname "wan" meta l4proto tcp dnat ip to tcp dport map @fwd_map`}, mapper: true},
		{name: "address-dependent filtering", p: with(func(p *nat.Profile) { p.Filtering = nat.AddressDependent }),
			want: []string{"dnat ip to ip saddr . tcp dport map @adf_map"}, mapper: true},
		{name: "symmetric random", p: with(func(p *nat.Profile) { p.Mapping, p.PortAllocation = nat.AddressPortDependent, nat.Random }),
			want: []string{"masquerade fully-random"}, notWant: []string{"@eim_map snat"}},
		{name: "eim sequential", p: with(func(p *nat.Profile) { p.PortAllocation, p.PortDelta = nat.Sequential, 3 }),
			want: []string{"@eim_map snat ip to 203.0.113.2", "numgen inc mod 2000 map @seq_map", "1 : 20003"}, mapper: true},
		{name: "address-dependent mapping", p: with(func(p *nat.Profile) { p.Mapping, p.PortAllocation = nat.AddressDependent, nat.Random }),
			want: []string{"@adm_map snat"}, mapper: true},
		{name: "rst", p: with(func(p *nat.Profile) { p.UnsolicitedSYN = nat.SYNRST }), want: []string{"reject with tcp reset"}},
		{name: "icmp port", p: with(func(p *nat.Profile) { p.UnsolicitedSYN = nat.SYNICMPPort }), want: []string{"reject with icmp type port-unreachable"}},
		{name: "icmp admin", p: with(func(p *nat.Profile) { p.UnsolicitedSYN = nat.SYNICMPAdmin }), want: []string{"reject with icmp type admin-prohibited"}},
		{name: "no simultaneous open", p: with(func(p *nat.Profile) { p.SimultaneousOpen = nat.SimDrop }), want: []string{"tcp flags & (syn | ack) == syn ct direction reply drop"}},
		{name: "simultaneous open rst", p: with(func(p *nat.Profile) { p.SimultaneousOpen = nat.SimRST }), want: []string{"ct direction reply reject with tcp reset"}},
		{name: "icmp te drop", p: with(func(p *nat.Profile) { p.ICMPTimeExceeded = nat.Drop }), want: []string{"icmp type time-exceeded drop"}},
		{name: "strict", p: with(func(p *nat.Profile) { p.SequenceTracking = nat.SeqStrict }), sysctl: map[string]string{"net/netfilter/nf_conntrack_tcp_be_liberal": "0"}},
		{name: "timers", p: with(func(p *nat.Profile) { p.TransitoryTimeout, p.EstablishedTimeout = 3, 60 }),
			sysctl: map[string]string{"net/netfilter/nf_conntrack_tcp_timeout_syn_sent": "3", "net/netfilter/nf_conntrack_tcp_timeout_established": "60"}},
		{name: "hairpin", p: with(func(p *nat.Profile) { p.Hairpinning = true }),
			want: []string{`iifname != "wan" ip daddr 203.0.113.2 meta l4proto tcp dnat ip to tcp dport map @fwd_map`, "ct status dnat snat ip to 203.0.113.2"}, mapper: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := compile(tt.p, ifs)
			for _, w := range tt.want {
				if !strings.Contains(plan.Ruleset, w) {
					t.Errorf("ruleset lacks %q:\n%s", w, plan.Ruleset)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(plan.Ruleset, w) {
					t.Errorf("ruleset has %q:\n%s", w, plan.Ruleset)
				}
			}
			for k, v := range tt.sysctl {
				if plan.Sysctls[k] != v {
					t.Errorf("sysctl %s = %q, want %q", k, plan.Sysctls[k], v)
				}
			}
			if plan.Mapper != tt.mapper {
				t.Errorf("mapper = %v, want %v", plan.Mapper, tt.mapper)
			}
		})
	}
	none, _ := nat.Load("none")
	if plan := compile(none, ifs); plan.Ruleset != "" || plan.Mapper {
		t.Errorf("none compiles to rules: %q", plan.Ruleset)
	}
}
