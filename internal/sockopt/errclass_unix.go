//go:build !windows

package sockopt

import "syscall"

// sockErrs are each ErrClass's errors here (by ErrClass).
var sockErrs = [...][]error{
	Refused:      {syscall.ECONNREFUSED},
	Reset:        {syscall.ECONNRESET},
	Unreachable:  {syscall.EHOSTUNREACH, syscall.ENETUNREACH},
	AddrInUse:    {syscall.EADDRINUSE},
	AddrNotAvail: {syscall.EADDRNOTAVAIL},
	TimedOut:     {syscall.ETIMEDOUT},
}
