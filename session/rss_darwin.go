package session

import "syscall"

// MaxRSS is this process's peak resident set size in KiB (0 if unknown);
// macOS reports it in bytes.
func MaxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss / 1024
}
