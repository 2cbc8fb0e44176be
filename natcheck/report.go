package natcheck

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/machsend/machsend/traversal/model"
	"gopkg.in/yaml.v3"
)

// WriteTable prints the result for a person: one knob a line, with evidence.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "server\t%s\n", r.Server)
	fmt.Fprintf(tw, "this host\t%s, seen as %s\n", r.Local, r.Public)
	fmt.Fprintf(tw, "layered NAT\t%s\n", r.Layered)
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "KNOB\tVALUE\tEVIDENCE")
	for _, k := range r.Knobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, k.Value, k.Evidence)
	}
	fmt.Fprintf(tw, "\t\nprobes\t%d connections, %v, %d sockets left open\n", r.Probes, r.Duration.Round(1e6), r.LeftOpen)
	return tw.Flush()
}

// Profile renders the result as a natlab profile (YAML) named name, with
// each knob's evidence as a comment; unobserved knobs say unknown.
func (r *Result) Profile(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Measured by machsend natcheck against %s.\n", r.Server)
	fmt.Fprintf(&b, "name: %s\n", name)
	fmt.Fprintf(&b, "description: %s\n", yamlString(fmt.Sprintf("Measured by machsend natcheck (%s seen as %s; layered NAT: %s).", r.Local, r.Public, r.Layered)))
	b.WriteString("device-class: The NAT in front of the host that ran natcheck.\n")
	if r.Get("nat") == "off" {
		b.WriteString("nat: off\n")
		return b.String()
	}
	for _, k := range r.Knobs {
		switch k.Name {
		case "nat":
			continue
		case "timers.transitory", "timers.established":
			continue
		}
		fmt.Fprintf(&b, "# %s\n%s: %s\n", yamlSafe(k.Evidence), k.Name, k.Value)
	}
	tr, te := r.Get("timers.transitory"), r.Get("timers.established")
	fmt.Fprintf(&b, "timers:\n  transitory: %s\n  established: %s\n", orUnknown(tr), orUnknown(te))
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return Unknown
	}
	return s
}

func yamlSafe(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// yamlString renders s as one YAML scalar, quoted as needed.
func yamlString(s string) string {
	b, err := yaml.Marshal(yamlSafe(s))
	if err != nil {
		return `""`
	}
	return strings.TrimSpace(string(b))
}

// Peer is a kind of NAT a peer may be behind, for the verdict.
type Peer struct {
	Kind string
	NAT  model.NAT
}

// Peers are the peer kinds the verdict considers: the classes the NAT
// literature names.
var Peers = []Peer{
	{"public host", model.NAT{Name: "public", None: true}},
	{"full cone", model.NAT{Name: "full-cone", Mapping: model.EI, Allocation: model.Preserv, Filtering: model.EI, UnsolicitedSYN: "drop", SimultaneousOpen: "accept", SequenceTracking: "liberal", ICMPTimeExceeded: "translate"}},
	{"restricted cone", model.NAT{Name: "restricted-cone", Mapping: model.EI, Allocation: model.Preserv, Filtering: model.AD, UnsolicitedSYN: "drop", SimultaneousOpen: "accept", SequenceTracking: "liberal", ICMPTimeExceeded: "translate"}},
	{"port-restricted cone", model.NAT{Name: "port-restricted-cone", Mapping: model.EI, Allocation: model.Preserv, Filtering: model.APD, UnsolicitedSYN: "drop", SimultaneousOpen: "accept", SequenceTracking: "liberal", ICMPTimeExceeded: "translate"}},
	{"Linux default", model.NAT{Name: "linux-default", Mapping: model.EI, Allocation: model.Preserv, Filtering: model.APD, UnsolicitedSYN: "rst", SimultaneousOpen: "accept", SequenceTracking: "strict", ICMPTimeExceeded: "translate"}},
	{"symmetric, sequential", model.NAT{Name: "symmetric-sequential", Mapping: model.APD, Allocation: model.Seq, Filtering: model.APD, UnsolicitedSYN: "drop", SimultaneousOpen: "accept", SequenceTracking: "liberal", ICMPTimeExceeded: "translate"}},
	{"symmetric, random", model.NAT{Name: "symmetric-random", Mapping: model.APD, Allocation: model.Random, Filtering: model.APD, UnsolicitedSYN: "drop", SimultaneousOpen: "accept", SequenceTracking: "liberal", ICMPTimeExceeded: "translate"}},
}

// Defaults are the values the model (and natlab) assume for a knob natcheck
// could not observe: those of Linux, the most common home-router system.
var Defaults = map[string]string{
	"mapping": model.EI, "port-allocation": model.Preserv, "filtering": model.APD, "unsolicited-syn": "rst",
	"simultaneous-open": "accept", "sequence-tracking": "strict", "icmp-time-exceeded": "translate", "hairpinning": "off",
}

// ModelNAT is the measured NAT in the model's terms, with the knobs it had
// to assume.
func (r *Result) ModelNAT() (model.NAT, []string) {
	if r.Get("nat") == "off" {
		return model.NAT{Name: "measured", None: true}, nil
	}
	var assumed []string
	get := func(k string) string {
		v := r.Get(k)
		if v == "" || v == Unknown {
			assumed = append(assumed, k+"="+Defaults[k])
			return Defaults[k]
		}
		return v
	}
	n := model.NAT{Name: "measured", Mapping: get("mapping"), Allocation: get("port-allocation"), Filtering: get("filtering"),
		UnsolicitedSYN: get("unsolicited-syn"), SimultaneousOpen: get("simultaneous-open"), SequenceTracking: get("sequence-tracking"),
		ICMPTimeExceeded: get("icmp-time-exceeded"), Hairpinning: get("hairpinning") == "on"}
	// natcheck does not inject SYN-ACKs (it needs no privileges); natlab's
	// rule: strict sequence tracking implies the outbound SYN-ACK is dropped.
	n.OutboundSYNACK = "translate"
	if n.SequenceTracking == "strict" {
		n.OutboundSYNACK = "drop"
	}
	return n, assumed
}

// Verdict is, per peer kind, which methods the model expects to connect.
type Verdict struct {
	Peer    string            `json:"peer"`
	Works   []string          `json:"works"`
	Fails   map[string]string `json:"fails"` // method -> why
	Assumed []string          `json:"assumed,omitempty"`
}

// Methods the verdict covers (the punching methods and the relay).
var Methods = []string{"direct", "machsend", "stunt2", "stunt2-hold", "p2pnat", "sequential", "relay"}

// Verdicts runs the model for the measured NAT against every peer kind.
func (r *Result) Verdicts() []Verdict {
	me, assumed := r.ModelNAT()
	var out []Verdict
	for _, p := range Peers {
		v := Verdict{Peer: p.Kind, Fails: map[string]string{}, Assumed: assumed}
		for _, m := range Methods {
			pr := model.Predict(model.Separate, me, p.NAT, m)
			if pr.Success {
				v.Works = append(v.Works, m)
			} else {
				v.Fails[m] = pr.Reason
			}
		}
		out = append(out, v)
	}
	return out
}

// WriteVerdict prints the verdicts for a person.
func (r *Result) WriteVerdict(w io.Writer) {
	vs := r.Verdicts()
	fmt.Fprintln(w, "\nWhat will work from behind this NAT (traversal model, per kind of peer NAT):")
	for _, v := range vs {
		direct := "no hole-punching method"
		var punch []string
		for _, m := range v.Works {
			if m != "relay" {
				punch = append(punch, m)
			}
		}
		if len(punch) > 0 {
			direct = strings.Join(punch, ", ")
		}
		fmt.Fprintf(w, "  against %-22s %s\n", v.Peer+":", direct)
	}
	if len(vs) > 0 && len(vs[0].Assumed) > 0 {
		fmt.Fprintf(w, "  (knobs not measured were assumed: %s)\n", strings.Join(vs[0].Assumed, ", "))
	}
	fmt.Fprintln(w, "  The relay works against every peer.")
}
