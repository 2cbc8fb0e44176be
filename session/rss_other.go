//go:build !linux && !darwin

package session

// MaxRSS is this process's peak resident set size in KiB: unknown (0) on
// this OS.
func MaxRSS() int64 { return 0 }
