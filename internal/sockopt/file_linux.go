package sockopt

import "os"

// osFile wraps a socket descriptor of a raw socket (raw_linux.go).
func osFile(fd int) *os.File { return os.NewFile(uintptr(fd), "tcp") }
