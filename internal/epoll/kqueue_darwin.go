package epoll

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Set is a kqueue with a user event for Wake. Ctl and Wake may be called
// from any goroutine; Wait from one goroutine at a time.
type Set struct {
	kq  int
	buf []unix.Kevent_t

	mu  sync.Mutex
	out map[int]bool // descriptors registered for Out (mu)
}

// wakeIdent identifies the set's EVFILT_USER event.
const wakeIdent = 1

// New makes an empty set.
func New() (*Set, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, fmt.Errorf("kqueue: %w", err)
	}
	unix.CloseOnExec(kq)
	ev := []unix.Kevent_t{{Ident: wakeIdent, Filter: unix.EVFILT_USER, Flags: unix.EV_ADD | unix.EV_CLEAR}}
	if _, err := unix.Kevent(kq, ev, nil, nil); err != nil {
		unix.Close(kq)
		return nil, fmt.Errorf("kqueue: %w", err)
	}
	return &Set{kq: kq, out: map[int]bool{}}, nil
}

// Ctl adds (CtlAdd), changes (CtlMod) or removes (CtlDel) fd's
// registration for the events bits (In and Out map to kqueue's read and
// write filters; Hup, Err and RdHup are reported with them).
func (s *Set) Ctl(op, fd int, events uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	read, write := uint16(unix.EV_DELETE), uint16(unix.EV_DELETE)
	if op != CtlDel {
		if events&In != 0 {
			read = unix.EV_ADD | unix.EV_ENABLE
		}
		if events&Out != 0 {
			write = unix.EV_ADD | unix.EV_ENABLE
		}
	}
	for _, c := range []struct {
		filter int16
		flags  uint16
		had    bool
	}{{unix.EVFILT_READ, read, op != CtlAdd}, {unix.EVFILT_WRITE, write, s.out[fd]}} {
		if c.flags == unix.EV_DELETE && !c.had {
			continue
		}
		ev := []unix.Kevent_t{{Ident: uint64(fd), Filter: c.filter, Flags: c.flags}}
		if _, err := unix.Kevent(s.kq, ev, nil, nil); err != nil && !(c.flags == unix.EV_DELETE && errors.Is(err, unix.ENOENT)) {
			return fmt.Errorf("kevent: %w", err)
		}
	}
	if write == unix.EV_DELETE {
		delete(s.out, fd)
	} else {
		s.out[fd] = true
	}
	return nil
}

// Wait fills events with what is ready, waiting at most timeout when
// nothing is. idled says it found nothing ready at first; woken says Wake
// was called (the wake-up is not in events). A timeout returns no events
// and no error.
func (s *Set) Wait(events []Event, timeout time.Duration) (n int, idled, woken bool, err error) {
	if len(s.buf) < len(events) {
		s.buf = make([]unix.Kevent_t, len(events))
	}
	raw := s.buf[:len(events)]
	zero := unix.NsecToTimespec(0)
	got, err := unix.Kevent(s.kq, nil, raw, &zero)
	if err == nil && got == 0 {
		idled = true
		ts := unix.NsecToTimespec(int64(timeout))
		got, err = unix.Kevent(s.kq, nil, raw, &ts)
	}
	if errors.Is(err, unix.EINTR) {
		return 0, idled, false, nil
	}
	if err != nil {
		return 0, idled, false, fmt.Errorf("kevent: %w", err)
	}
	for _, ev := range raw[:got] {
		if ev.Filter == unix.EVFILT_USER {
			woken = true
			continue
		}
		var bits uint32
		switch ev.Filter {
		case unix.EVFILT_READ:
			bits = In
			if ev.Flags&unix.EV_EOF != 0 {
				bits |= RdHup
			}
		case unix.EVFILT_WRITE:
			bits = Out
			if ev.Flags&unix.EV_EOF != 0 {
				bits |= Hup
			}
		}
		if ev.Flags&unix.EV_ERROR != 0 {
			bits |= Err
		}
		events[n] = Event{Events: bits, Fd: int32(ev.Ident)}
		n++
	}
	return n, idled, woken, nil
}

// Wake makes a Wait return woken (now, or the next one).
func (s *Set) Wake() {
	ev := []unix.Kevent_t{{Ident: wakeIdent, Filter: unix.EVFILT_USER, Fflags: unix.NOTE_TRIGGER}}
	_, _ = unix.Kevent(s.kq, ev, nil, nil)
}

// Close closes the set (not the descriptors in it).
func (s *Set) Close() error { return unix.Close(s.kq) }
