package epoll

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Set is an epoll set with a wake-up descriptor. Ctl and Wake may be
// called from any goroutine; Wait from one goroutine at a time.
type Set struct {
	fd   int
	file *os.File // fd, watched by the Go runtime's poller
	rc   syscall.RawConn
	wake int // an eventfd in the set: Wake makes Wait return woken
	buf  []syscall.EpollEvent
}

// New makes an empty set.
func New() (*Set, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	wake, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", errno)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wake)}
	err = syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, int(wake), &ev)
	if err == nil {
		err = syscall.SetNonblock(fd, true)
	}
	if err != nil {
		syscall.Close(fd)
		syscall.Close(int(wake))
		return nil, fmt.Errorf("epoll: %w", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		syscall.Close(int(wake))
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return &Set{fd: fd, file: f, rc: rc, wake: int(wake)}, nil
}

// Ctl adds (CtlAdd), changes (CtlMod) or removes (CtlDel) fd's
// registration for the events bits; the event's data is fd.
func (s *Set) Ctl(op, fd int, events uint32) error {
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd)}
	if err := syscall.EpollCtl(s.fd, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// Wait fills events with what is ready, waiting at most timeout when
// nothing is. idled says it found nothing ready at first (the caller was
// caught up); woken says Wake was called (the wake-up is not in events).
// A timeout returns no events and no error.
func (s *Set) Wait(events []Event, timeout time.Duration) (n int, idled, woken bool, err error) {
	if len(s.buf) < len(events) {
		s.buf = make([]syscall.EpollEvent, len(events))
	}
	raw := s.buf[:len(events)]
	var werr error
	_ = s.file.SetReadDeadline(time.Now().Add(timeout))
	err = s.rc.Read(func(fd uintptr) bool {
		n, werr = syscall.EpollWait(int(fd), raw, 0)
		if errors.Is(werr, syscall.EINTR) {
			n, werr = 0, nil
		}
		if n <= 0 && werr == nil {
			n, idled = 0, true
			return false // park in the runtime's poller until the set is readable
		}
		return true
	})
	switch {
	case werr != nil:
		return 0, idled, false, fmt.Errorf("epoll_wait: %w", werr)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, idled, false, nil
	case err != nil:
		return 0, idled, false, fmt.Errorf("epoll_wait: %w", err)
	}
	kept := 0
	for _, ev := range raw[:n] {
		if int(ev.Fd) == s.wake {
			woken = true
			continue
		}
		events[kept] = Event{Events: ev.Events, Fd: ev.Fd}
		kept++
	}
	return kept, idled, woken, nil
}

// Wake makes a Wait return woken (now, or the next one).
func (s *Set) Wake() {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	_, _ = syscall.Write(s.wake, one)
}

// Close closes the set (not the descriptors in it).
func (s *Set) Close() error {
	syscall.Close(s.wake)
	return s.file.Close()
}
