//go:build !linux

package rendezvous

// startSniffer does nothing off Linux: raw sockets on macOS and Windows
// do not receive TCP, so the server knows a sink's SYN only from the
// mapping a client names.
func (p *prober) startSniffer() {}
