// Package measure measures a lab path the way the impairment tests and the
// calibration in results/ need it: round-trip time from UDP echoes, loss,
// reordering and loss bursts from numbered UDP datagrams, TCP goodput and
// the wire rate an interface achieved, and the packet rate a path carries
// under a flood. Every function takes the namespaces of the two ends and
// opens its sockets inside them (natlab.Do), so the packets cross the lab's
// real datapath, impairments included.
package measure

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/vishvananda/netns"

	"github.com/machsend/machsend/natlab"
)

// ErrNoReplies is returned when not one probe came back.
var ErrNoReplies = errors.New("no probe came back")

func udpOn(ns netns.NsHandle, addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := natlab.Do(ns, func() error {
		a, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", a)
		return err
	})
	return c, err
}

// echo answers every datagram on c with itself until c is closed.
func echo(c *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteToUDPAddrPort(buf[:n], from)
	}
}

// RTT sends n UDP echo requests, spaced by gap, from the client namespace to
// an echo server it starts at server:port in the server namespace, and
// returns the round-trip times of those that came back (sorted).
func RTT(client, server netns.NsHandle, dst netip.AddrPort, n int, gap time.Duration) ([]time.Duration, error) {
	srv, err := udpOn(server, dst.String())
	if err != nil {
		return nil, fmt.Errorf("echo server: %w", err)
	}
	defer srv.Close()
	go echo(srv)
	c, err := udpOn(client, "0.0.0.0:0")
	if err != nil {
		return nil, fmt.Errorf("echo client: %w", err)
	}
	defer c.Close()
	var mu sync.Mutex
	sent := map[uint32]time.Time{}
	var rtts []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			m, err := c.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			if m < 4 {
				continue
			}
			seq := binary.BigEndian.Uint32(buf)
			mu.Lock()
			if t, ok := sent[seq]; ok {
				rtts = append(rtts, now.Sub(t))
				delete(sent, seq)
			}
			mu.Unlock()
		}
	}()
	buf := make([]byte, 32)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(buf, uint32(i))
		mu.Lock()
		sent[uint32(i)] = time.Now()
		mu.Unlock()
		if _, err := c.WriteToUDPAddrPort(buf, dst); err != nil {
			return nil, fmt.Errorf("send probe: %w", err)
		}
		time.Sleep(gap)
	}
	// Late replies: wait up to 2 s past the last.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		left := len(sent)
		mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()
	<-done
	if len(rtts) == 0 {
		return nil, ErrNoReplies
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return rtts, nil
}

// Median returns the median of sorted durations.
func Median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)/2]
}

// Stream is what a numbered datagram stream saw.
type Stream struct {
	Sent      int     `json:"sent"`
	Received  int     `json:"received"`
	Loss      float64 `json:"loss"`
	Reordered int     `json:"reordered"` // arrived after a higher number (RFC 4737)
	// Overtook counts datagrams that arrived before a lower-numbered one
	// (what netem's reorder makes: the packets sent at once).
	Overtook int `json:"overtook"`
	// MeanBurst is the mean length of runs of consecutive lost datagrams.
	MeanBurst float64       `json:"mean_burst"`
	Duration  time.Duration `json:"duration_ns"`
}

// Datagrams sends n numbered datagrams of size bytes (at least 8) from the
// client namespace to dst in the server namespace, pps per second (0: as fast
// as possible), and reports loss, reordering and loss bursts as seen by the
// receiver. It waits wait after the last datagram for stragglers.
func Datagrams(client, server netns.NsHandle, dst netip.AddrPort, n, size int, pps float64, wait time.Duration) (Stream, error) {
	size = max(size, 8)
	srv, err := udpOn(server, dst.String())
	if err != nil {
		return Stream{}, fmt.Errorf("receiver: %w", err)
	}
	defer srv.Close()
	_ = srv.SetReadBuffer(16 << 20)
	got := make([]bool, n)
	var order []uint32
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			m, err := srv.Read(buf)
			if err != nil {
				return
			}
			if m < 8 {
				continue
			}
			seq := binary.BigEndian.Uint32(buf)
			if int(seq) < n && !got[seq] {
				got[seq] = true
				order = append(order, seq)
			}
		}
	}()
	c, err := udpOn(client, "0.0.0.0:0")
	if err != nil {
		return Stream{}, fmt.Errorf("sender: %w", err)
	}
	defer c.Close()
	_ = c.SetWriteBuffer(16 << 20)
	buf := make([]byte, size)
	start := time.Now()
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(buf, uint32(i))
		if _, err := c.WriteToUDPAddrPort(buf, dst); err != nil {
			// A full socket buffer: wait and retry once.
			time.Sleep(time.Millisecond)
			_, _ = c.WriteToUDPAddrPort(buf, dst)
		}
		if pps > 0 {
			if ahead := time.Duration(float64(i+1)/pps*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	sendDur := time.Since(start)
	time.Sleep(wait)
	srv.Close()
	<-done
	s := Stream{Sent: n, Received: len(order), Duration: sendDur}
	s.Loss = 1 - float64(s.Received)/float64(n)
	var highest uint32
	for i, seq := range order {
		if i > 0 && seq < highest {
			s.Reordered++
		}
		highest = max(highest, seq)
	}
	suffixMin := uint32(math.MaxUint32)
	for i := len(order) - 1; i >= 0; i-- {
		if order[i] > suffixMin {
			s.Overtook++
		}
		suffixMin = min(suffixMin, order[i])
	}
	bursts, lost := 0, 0
	for i := 0; i < n; i++ {
		if !got[i] {
			lost++
			if i == 0 || got[i-1] {
				bursts++
			}
		}
	}
	if bursts > 0 {
		s.MeanBurst = float64(lost) / float64(bursts)
	}
	return s, nil
}

// Binomial99 returns the 99% interval of the loss fraction observed in n
// independent trials at probability p (normal approximation with continuity
// correction; adequate for n·p ≥ 10).
func Binomial99(n int, p float64) (lo, hi float64) { return binomial(n, p, 2.5758) }

// Binomial999 is Binomial99's 99.9% interval: what a test asserts, so that
// a correct datapath fails one run in a thousand per assertion, not one in
// a hundred.
func Binomial999(n int, p float64) (lo, hi float64) { return binomial(n, p, 3.2905) }

// binomial is the normal approximation's interval at z, with continuity
// correction.
func binomial(n int, p, z float64) (lo, hi float64) {
	sd := math.Sqrt(float64(n) * p * (1 - p))
	mean := float64(n) * p
	return (mean - z*sd - 0.5) / float64(n), (mean + z*sd + 0.5) / float64(n)
}

// Bulk is a TCP bulk transfer's result.
type Bulk struct {
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	// Goodput is payload bits per second.
	Goodput float64 `json:"goodput_bps"`
	// Wire is the rate in Ethernet frames (1514 bytes on the wire for
	// every 1448 of payload: MTU 1500, TCP timestamps), which is what tbf
	// limits. Interface byte counters cannot give it: a GSO super-packet
	// carries its headers once.
	Wire float64 `json:"wire_bps"`
}

// WireRatio converts TCP goodput to Ethernet frame rate at MTU 1500.
const WireRatio = 1514.0 / 1448.0

// TCPBulk sends bytes over one TCP connection from the client namespace to a
// sink it starts at dst in the server namespace.
func TCPBulk(client, server netns.NsHandle, dst netip.AddrPort, bytes int64) (Bulk, error) {
	var ln net.Listener
	if err := natlab.Do(server, func() error {
		var err error
		ln, err = net.Listen("tcp4", dst.String())
		return err
	}); err != nil {
		return Bulk{}, fmt.Errorf("sink: %w", err)
	}
	defer ln.Close()
	recvd := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recvd <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		recvd <- n
	}()
	var conn net.Conn
	if err := natlab.Do(client, func() error {
		var err error
		conn, err = net.DialTimeout("tcp4", dst.String(), 5*time.Second)
		return err
	}); err != nil {
		return Bulk{}, fmt.Errorf("connect: %w", err)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	var sent int64
	for sent < bytes {
		k := min(int64(len(buf)), bytes-sent)
		m, err := conn.Write(buf[:k])
		sent += int64(m)
		if err != nil {
			conn.Close()
			return Bulk{}, fmt.Errorf("send: %w", err)
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	got := <-recvd
	dur := time.Since(start)
	conn.Close()
	if got != bytes {
		return Bulk{}, fmt.Errorf("sink received %d of %d bytes", got, bytes)
	}
	g := float64(bytes*8) / dur.Seconds()
	return Bulk{Bytes: bytes, Duration: dur, Goodput: g, Wire: g * WireRatio}, nil
}
