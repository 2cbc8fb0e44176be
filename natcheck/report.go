package natcheck

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/traversal/method"
	"github.com/machsend/machsend/traversal/model"
)

// WriteTable prints the result for a person: one knob a line, with evidence.
func (r *Result) WriteTable(w io.Writer) error {
	if warn := r.Warning(); warn != "" {
		fmt.Fprintf(w, "WARNING: %s\n\n", warn)
	}
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
		if kn, ok := nat.Lookup(k.Name); ok && kn.Derived != "" && k.Value == Unknown {
			// Omitted: natlab then derives it, as for a profile file
			// without it.
			fmt.Fprintf(&b, "# %s: %s\n", k.Name, yamlSafe(k.Evidence))
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
	NAT  *nat.Profile
}

// Peers are the peer kinds the verdict considers: the classes the NAT
// literature names, as the built-in profiles realise them.
var Peers = []Peer{
	{"public host", nat.Public("public")},
	{"full cone", nat.MustBuiltin("full-cone")},
	{"restricted cone", nat.MustBuiltin("restricted-cone")},
	{"port-restricted cone", nat.MustBuiltin("port-restricted-cone")},
	{"Linux default", nat.MustBuiltin("linux-default")},
	{"symmetric, sequential", nat.MustBuiltin("symmetric-sequential")},
	{"symmetric, random", nat.MustBuiltin("symmetric-random")},
}

// NAT is the measured NAT as a profile, built from the same YAML that
// Profile writes, with the knobs it had to assume: every knob the model
// uses that natcheck should have measured and did not is taken at its
// nat.Knobs default (outbound-synack, where natcheck could not observe
// it, follows sequence-tracking as in any profile that omits it).
func (r *Result) NAT() (*nat.Profile, []string) {
	if r.Get("nat") == "off" {
		return nat.Public("measured"), nil
	}
	p, assumed, err := r.withDefaults().parse()
	if err != nil {
		// A combination natlab rejects (e.g. preserve with a dependent
		// mapping): fall back to the defaults and say so.
		p, assumed, _ = (&Result{}).withDefaults().parse()
		assumed = append(assumed, "all (measured values inconsistent: "+err.Error()+")")
	}
	return p, assumed
}

// withDefaults is r with every knob the model needs present: measured, or
// "unknown" (which a profile builds at the knob's default).
func (r *Result) withDefaults() *Result {
	full := &Result{Server: r.Server, Local: r.Local, Public: r.Public, Layered: r.Layered}
	for _, k := range nat.Knobs {
		switch v := r.Get(k.Name); {
		case v != "":
			full.Knobs = append(full.Knobs, Knob{k.Name, v, "measured"})
		case k.Name == "nat":
			full.Knobs = append(full.Knobs, Knob{k.Name, "on", "behind a NAT"})
		case k.Modelled && k.Observable:
			full.Knobs = append(full.Knobs, Knob{k.Name, Unknown, "not measured"})
		}
	}
	return full
}

// parse reads back the profile r writes; assumed are the knobs the model
// uses that it gives as unknown, each with the default it is built with.
func (r *Result) parse() (*nat.Profile, []string, error) {
	p, err := nat.Parse("measured", []byte(r.Profile("measured")))
	if err != nil {
		return nil, nil, err
	}
	var assumed []string
	for _, name := range p.Unknown {
		if k, ok := nat.Lookup(name); ok && k.Modelled {
			assumed = append(assumed, name+"="+k.Default)
		}
	}
	return p, assumed, nil
}

// Verdict is, per peer kind, which methods the model expects to connect.
type Verdict struct {
	Peer    string            `json:"peer"`
	Works   []string          `json:"works"`
	Fails   map[string]string `json:"fails"` // method -> why
	Assumed []string          `json:"assumed,omitempty"`
}

// Methods the verdict covers: every method of method.Table a user can run
// on the Internet (not the LAN, not the raw-socket ones, which are lab-only).
var Methods = func() []string {
	var out []string
	for _, s := range method.Table {
		if s.Path != method.PathLAN && !s.Raw {
			out = append(out, string(s.Method))
		}
	}
	return out
}()

// Verdicts runs the model for the measured NAT against every peer kind.
func (r *Result) Verdicts() []Verdict {
	me, assumed := r.NAT()
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

// Warning says why the result may not describe this host's NAT on the
// internet: a server that sees this host at a loopback, private, shared
// (carrier-grade NAT) or link-local address is on the same side of the
// NAT, so it cannot observe the NAT at all ("" when there is no such
// reason).
func (r *Result) Warning() string {
	a := r.Public.Unmap()
	var what string
	switch {
	case !a.IsValid():
		return ""
	case a.IsLoopback():
		what = "a loopback address"
	case a.IsPrivate():
		what = "a private address"
	case sharedSpace.Contains(a):
		what = "an address of carrier-grade NAT space (100.64.0.0/10)"
	case a.IsLinkLocalUnicast():
		what = "a link-local address"
	default:
		return ""
	}
	return fmt.Sprintf("the server %s sees this host at %s, %s: it is inside the same network, so it cannot see a NAT between this host and the internet. "+
		"Run natcheck against a server on the internet to measure the NAT people reach you through.", r.Server, a, what)
}

// sharedSpace is RFC 6598's shared address space, which carrier-grade NATs
// number their customers from.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")
