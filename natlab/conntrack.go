package natlab

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
)

// tcpStates names conntrack's TCP states (include/uapi/.../nf_conntrack_tcp.h).
var tcpStates = []string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
	"LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

// Endpoint is an IPv4 address and port.
type Endpoint = netip.AddrPort

// ConntrackEntry is one conntrack flow of a NAT, as data.
type ConntrackEntry struct {
	ID        uint32   `json:"id"`
	Proto     string   `json:"proto"`
	State     string   `json:"state,omitempty"`
	OrigSrc   Endpoint `json:"orig_src"`
	OrigDst   Endpoint `json:"orig_dst"`
	ReplySrc  Endpoint `json:"reply_src"`
	ReplyDst  Endpoint `json:"reply_dst"`
	Timeout   uint32   `json:"timeout"` // seconds left
	SeenReply bool     `json:"seen_reply"`
	Assured   bool     `json:"assured"`
	SNAT      bool     `json:"snat"`
	DNAT      bool     `json:"dnat"`
}

// String renders an entry like conntrack -L does, briefly.
func (e ConntrackEntry) String() string {
	return fmt.Sprintf("%s %s %s->%s reply %s->%s timeout=%d", e.Proto, e.State, e.OrigSrc, e.OrigDst, e.ReplySrc, e.ReplyDst, e.Timeout)
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return fmt.Sprint(p)
}

func entryOf(f conntrack.Flow) ConntrackEntry {
	ep := func(a netip.Addr, p uint16) Endpoint { return netip.AddrPortFrom(a, p) }
	e := ConntrackEntry{
		ID:        f.ID,
		Proto:     protoName(f.TupleOrig.Proto.Protocol),
		OrigSrc:   ep(f.TupleOrig.IP.SourceAddress, f.TupleOrig.Proto.SourcePort),
		OrigDst:   ep(f.TupleOrig.IP.DestinationAddress, f.TupleOrig.Proto.DestinationPort),
		ReplySrc:  ep(f.TupleReply.IP.SourceAddress, f.TupleReply.Proto.SourcePort),
		ReplyDst:  ep(f.TupleReply.IP.DestinationAddress, f.TupleReply.Proto.DestinationPort),
		Timeout:   f.Timeout,
		SeenReply: f.Status.SeenReply(),
		Assured:   f.Status.Assured(),
		SNAT:      f.Status.SrcNAT(),
		DNAT:      f.Status.DstNAT(),
	}
	if f.ProtoInfo.TCP != nil && int(f.ProtoInfo.TCP.State) < len(tcpStates) {
		e.State = tcpStates[f.ProtoInfo.TCP.State]
	}
	return e
}

// Conntrack returns a snapshot of a node's conntrack table, sorted by
// original source then destination.
func (l *Lab) Conntrack(node string) ([]ConntrackEntry, error) {
	n, err := l.Node(node)
	if err != nil {
		return nil, err
	}
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(n.Handle)})
	if err != nil {
		return nil, fmt.Errorf("conntrack on %s: %w", node, err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return nil, fmt.Errorf("conntrack dump on %s: %w", node, err)
	}
	out := make([]ConntrackEntry, 0, len(flows))
	for _, f := range flows {
		out = append(out, entryOf(f))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].OrigSrc != out[j].OrigSrc {
			return out[i].OrigSrc.String() < out[j].OrigSrc.String()
		}
		return out[i].OrigDst.String() < out[j].OrigDst.String()
	})
	return out, nil
}

// FlushConntrack empties a node's conntrack table.
func (l *Lab) FlushConntrack(node string) error {
	n, err := l.Node(node)
	if err != nil {
		return err
	}
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(n.Handle)})
	if err != nil {
		return fmt.Errorf("conntrack on %s: %w", node, err)
	}
	defer c.Close()
	if err := c.Flush(); err != nil {
		return fmt.Errorf("conntrack flush on %s: %w", node, err)
	}
	return nil
}
