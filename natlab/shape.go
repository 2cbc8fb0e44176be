package natlab

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// Shape limits the egress rate of a node's interface with a token bucket
// filter (tbf): the rate part of an impair.Impairment (Lab.Impair), applied after
// the delay queue. bitsPerSec 0 removes the limit.
func (l *Lab) Shape(node, iface string, bitsPerSec uint64) error {
	n, err := l.Node(node)
	if err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(n.Handle)
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", node, iface, err)
	}
	attrs := netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}
	if bitsPerSec == 0 {
		err := h.QdiscDel(&netlink.Tbf{QdiscAttrs: attrs})
		if err != nil {
			return fmt.Errorf("remove shaping on %s/%s: %w", node, iface, err)
		}
		return nil
	}
	rate := bitsPerSec / 8
	// Burst: 2 ms worth of bytes, at least 8 frames. A larger minimum lets
	// low rates run fast (64 KiB made 10 Mbit/s measure 1.7% high); GSO
	// super-packets above the burst are segmented by tbf. Limit: 50 ms of
	// queue.
	burst := uint32(max(rate/500, 8*1514))
	tbf := &netlink.Tbf{QdiscAttrs: attrs, Rate: rate, Buffer: burst, Limit: uint32(max(rate/20, 256<<10)), Minburst: 1514}
	// netlink wants the buffer as the time to send it at the rate, in ticks.
	tbf.Buffer = uint32(netlink.Xmittime(rate, burst))
	if err := h.QdiscReplace(tbf); err != nil {
		return fmt.Errorf("shape %s/%s to %d bit/s: %w", node, iface, bitsPerSec, err)
	}
	return nil
}
