//go:build !unix

package rendezvous

// fdLimit is what the server takes for its descriptor limit where the
// system has none to read (Windows: sockets are bounded by memory, not by
// a per-process count), so that every share of it stays a real bound.
func fdLimit() int { return 16384 }
