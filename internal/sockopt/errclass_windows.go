package sockopt

import "golang.org/x/sys/windows"

// sockErrs are each ErrClass's errors here (by ErrClass): Winsock's own
// numbers; a connection the stack aborted (WSAECONNABORTED, or the
// "network name deleted" an overlapped read reports) counts as reset.
var sockErrs = [...][]error{
	Refused:      {windows.WSAECONNREFUSED},
	Reset:        {windows.WSAECONNRESET, windows.WSAECONNABORTED, windows.ERROR_NETNAME_DELETED},
	Unreachable:  {windows.WSAEHOSTUNREACH, windows.WSAENETUNREACH},
	AddrInUse:    {windows.WSAEADDRINUSE},
	AddrNotAvail: {windows.WSAEADDRNOTAVAIL},
	TimedOut:     {windows.WSAETIMEDOUT},
}
