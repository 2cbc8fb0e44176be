package transfer

import (
	"bufio"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/flynn/noise"
)

// ErrWrongSecret means the peer could not prove it holds the link secret.
var ErrWrongSecret = errors.New("peer does not hold the link secret (wrong or stale link)")

// ErrTampered means a message failed authentication: something changed the
// bytes in transit. The transfer is aborted.
var ErrTampered = errors.New("data failed authentication in transit")

// maxNoiseMsg is Noise's message limit (handshake messages); a record
// after the handshake carries at most maxPlain bytes, and one Write puts up
// to writeBatch bytes of records on the wire in one system call.
const (
	maxNoiseMsg = 65535
	maxPlain    = maxNoiseMsg - 16
	writeBatch  = 1 << 20
)

// SecureConn is an authenticated, encrypted stream over a connection: a Noise
// NNpsk0 handshake (ephemeral X25519, so forward secret; the pre-shared key
// is derived from the link secret, so only holders of the link complete it),
// then AES-256-GCM records of up to 64 KiB, each framed by a 4-byte length.
type SecureConn struct {
	conn net.Conn
	br   *bufio.Reader
	send *noise.CipherState
	recv *noise.CipherState

	rmu  sync.Mutex
	rbuf []byte // decrypted, not yet returned
	rraw []byte
	wmu  sync.Mutex
	wraw []byte
}

func psk(secret []byte, session string) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, []byte(session), "machsend transfer psk v1", 32)
}

// Secure runs the handshake over conn. The initiator is the receiver (peer B).
func Secure(conn net.Conn, secret []byte, session string, initiator bool) (sc *SecureConn, err error) {
	defer func() {
		if err != nil {
			conn.Close() // a peer that cannot prove the secret is dropped
		}
	}()
	key, err := psk(secret, session)
	if err != nil {
		return nil, err
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:           noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256),
		Random:                rand.Reader,
		Pattern:               noise.HandshakeNN,
		Initiator:             initiator,
		Prologue:              []byte("machsend v1 " + session),
		PresharedKey:          key,
		PresharedKeyPlacement: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("noise: %w", err)
	}
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	defer conn.SetDeadline(time.Time{})
	s := &SecureConn{conn: conn, br: bufio.NewReaderSize(conn, 256<<10)}
	if initiator {
		msg, _, _, err := hs.WriteMessage(nil, nil)
		if err != nil {
			return nil, err
		}
		if err := writeRecord(conn, msg); err != nil {
			return nil, err
		}
		in, err := readRecord(s.br, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrWrongSecret, err)
		}
		_, c1, c2, err := hs.ReadMessage(nil, in)
		if err != nil {
			return nil, ErrWrongSecret
		}
		s.send, s.recv = c1, c2
	} else {
		in, err := readRecord(s.br, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrWrongSecret, err)
		}
		if _, _, _, err := hs.ReadMessage(nil, in); err != nil {
			return nil, ErrWrongSecret
		}
		msg, c1, c2, err := hs.WriteMessage(nil, nil)
		if err != nil {
			return nil, err
		}
		if err := writeRecord(conn, msg); err != nil {
			return nil, err
		}
		s.send, s.recv = c2, c1
	}
	return s, nil
}

func writeRecord(w io.Writer, b []byte) error {
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], uint32(len(b)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// readRecord reads one length-prefixed record into buf (grown as needed).
func readRecord(r io.Reader, buf []byte) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n > maxNoiseMsg {
		return nil, fmt.Errorf("%w: record of %d bytes", ErrTampered, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Write encrypts p as records of up to maxPlain bytes, writing up to
// writeBatch bytes of them with one system call.
func (s *SecureConn) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n := 0
	for len(p) > 0 {
		batch := p[:min(len(p), writeBatch)]
		records := (len(batch) + maxPlain - 1) / maxPlain
		if need := len(batch) + records*(4+16); cap(s.wraw) < need {
			s.wraw = make([]byte, 0, need) // grows to at most a batch's records
		}
		out := s.wraw[:0]
		for rest := batch; len(rest) > 0; {
			rec := rest[:min(len(rest), maxPlain)]
			at := len(out)
			sealed, err := s.send.Encrypt(append(out, 0, 0, 0, 0), nil, rec)
			if err != nil {
				return n, err
			}
			binary.BigEndian.PutUint32(sealed[at:], uint32(len(sealed)-at-4))
			out = sealed
			rest = rest[len(rec):]
		}
		if _, err := s.conn.Write(out); err != nil {
			return n, err
		}
		n += len(batch)
		p = p[len(batch):]
	}
	return n, nil
}

// Read returns decrypted bytes; a record that fails authentication is ErrTampered.
func (s *SecureConn) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if len(s.rbuf) == 0 {
		raw, err := readRecord(s.br, s.rraw)
		if err != nil {
			return 0, err
		}
		s.rraw = raw[:0]
		if len(raw) == 16 { // an empty record: the stream goes on over the next path
			if _, err := s.recv.Decrypt(raw[:0], nil, raw); err != nil {
				return 0, ErrTampered
			}
			return 0, errPathEnd
		}
		if len(raw) >= 16 && len(p) >= len(raw)-16 { // room: decrypt straight into p
			plain, err := s.recv.Decrypt(p[:0], nil, raw)
			if err != nil {
				return 0, ErrTampered
			}
			return len(plain), nil
		}
		plain, err := s.recv.Decrypt(raw[:0], nil, raw)
		if err != nil {
			return 0, ErrTampered
		}
		s.rbuf = plain
	}
	n := copy(p, s.rbuf)
	s.rbuf = s.rbuf[n:]
	return n, nil
}

// EndPath sends an end-of-path record (authenticated, with no data): the
// stream in this direction goes on over another connection (Multipath).
// Write never sends an empty record, so nothing else looks like one.
func (s *SecureConn) EndPath() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	out, err := s.send.Encrypt(make([]byte, 4, 4+16), nil, nil)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(out[:4], uint32(len(out)-4))
	_, err = s.conn.Write(out)
	return err
}

// Close closes the underlying connection.
func (s *SecureConn) Close() error { return s.conn.Close() }

// SetDeadline sets the underlying connection's deadline.
func (s *SecureConn) SetDeadline(t time.Time) error { return s.conn.SetDeadline(t) }
