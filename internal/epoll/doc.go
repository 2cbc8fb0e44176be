// Package epoll is a readiness set for event loops written in Go: epoll(7)
// on Linux, kqueue(2) on macOS, behind one API (Set, Event, the In/Out/...
// bits and the CtlAdd/CtlMod/CtlDel operations, which have Linux's values).
//
// On Linux a loop goroutine waits on the set without blocking its thread,
// because the set (a non-blocking descriptor) is itself watched by the Go
// runtime's poller and the goroutine parks there until the set has events. A blocking
// epoll_wait would instead hold a thread in a system call, which the
// runtime answers by handing the thread's processor to another thread
// after 20 µs and taking one back when the call returns: thousands of
// thread switches a second under load. On macOS, Wait blocks its thread in
// kevent(2) (a development and small-deployment platform; the thread
// hand-off cost is accepted there).
//
// Descriptors added to a Set are owned by the caller: Detach takes an
// accepted or dialled TCP connection out of the Go runtime's poller so
// that it costs no goroutine; the caller reads and writes it with
// non-blocking system calls and closes it.
package epoll

// Event is one descriptor's readiness: the In/Out/... bits of Events.
type Event struct {
	Events uint32
	Fd     int32
}

// Readiness bits (Linux's EPOLL* values on every OS).
const (
	In    = 0x1
	Out   = 0x4
	Err   = 0x8
	Hup   = 0x10
	RdHup = 0x2000
)

// Ctl operations (Linux's EPOLL_CTL_* values on every OS).
const (
	CtlAdd = 1
	CtlDel = 2
	CtlMod = 3
)
