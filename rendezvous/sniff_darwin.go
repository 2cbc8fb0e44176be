package rendezvous

// startSniffer does nothing on macOS: its raw sockets do not receive TCP,
// so the server knows a sink's SYN only from the mapping a client names.
func (p *prober) startSniffer() {}
