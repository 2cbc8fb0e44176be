package rendezvous

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// TLS on the rendezvous port: a connection whose first byte starts a TLS
// handshake (0x16) is handed from the event loop to a goroutine that
// completes the handshake (at most tlsHandshakes at once, within
// tlsHandshakeTimeout), then joins the loop through a socket pair: the
// loop serves the plaintext end as any client, under the same admission
// limits, with the TCP connection's address as the client's, while two
// goroutines carry bytes between the pair and the TLS connection.
// Plain clients keep working on the same port. A client pins the server's
// key by the SHA-256 of its SubjectPublicKeyInfo (Pin), which a link
// carries, so a self-signed key is enough; an operator's certificate works
// the same way.

const (
	tlsHandshakes       = 64
	tlsHandshakeTimeout = 5 * time.Second
)

// looksTLS says whether a connection's first bytes start a TLS handshake.
func looksTLS(first []byte) bool { return len(first) > 0 && first[0] == 0x16 }

// tlsFront completes the handshakes of a server's TLS clients.
type tlsFront struct {
	srv   *Server
	cfg   *tls.Config // nil: TLS off (such a connection is malformed)
	slots chan struct{}
}

func newTLSFront(s *Server) *tlsFront {
	return &tlsFront{srv: s, cfg: s.cfg.TLS, slots: make(chan struct{}, tlsHandshakes)}
}

// handOff takes a connection that started a TLS handshake (see front).
func (t *tlsFront) handOff(fd int, remote, local netip.AddrPort, first []byte) {
	select {
	case t.slots <- struct{}{}:
	default:
		unix.Close(fd)
		t.srv.Stats.Rejected.Add(1)
		return
	}
	go t.serve(fd, remote, local, bytes.Clone(first))
}

func (t *tlsFront) serve(fd int, remote, local netip.AddrPort, first []byte) {
	conn, err := fdConn(fd)
	if err != nil {
		<-t.slots
		return
	}
	tc := tls.Server(&prefixConn{Conn: conn, first: first, release: func() {}}, t.cfg)
	_ = conn.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	err = tc.Handshake()
	<-t.slots
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		conn.Close()
		return
	}
	outer, err := fdConn(pair[1])
	if err != nil {
		unix.Close(pair[0])
		conn.Close()
		return
	}
	tcp, _ := conn.(*net.TCPConn)
	if !t.srv.register(pair[0], remote, local, tcp) {
		outer.Close()
		conn.Close()
		return
	}
	go func() { io.Copy(outer, tc); outer.Close(); tc.Close() }()
	go func() { io.Copy(tc, outer); tc.Close(); outer.Close() }()
}

// Pin is a TLS certificate's pin: base64url SHA-256 of its public key
// (SubjectPublicKeyInfo), what a link's pin= and a client's
// DialOptions.TLSPin hold.
func Pin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SelfSignedTLS is a TLS configuration with a certificate for key, made
// now (the pin depends only on the key, so it outlives restarts).
func SelfSignedTLS(key *ecdsa.PrivateKey) (*tls.Config, string, error) {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "machsend rendezvous"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0), DNSNames: []string{"machsend"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, "", err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	return cfg, Pin(cert), nil
}

// LoadOrCreateKey reads an ECDSA key (PEM) from path, or makes one and
// writes it there (mode 0600) if the file does not exist.
func LoadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("write the TLS key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the TLS key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM key", path)
	}
	return x509.ParseECPrivateKey(blk.Bytes)
}

// PinOf returns the pin of a TLS configuration's first certificate.
func PinOf(cfg *tls.Config) (string, error) {
	if cfg == nil || len(cfg.Certificates) == 0 || len(cfg.Certificates[0].Certificate) == 0 {
		return "", errors.New("no certificate")
	}
	cert, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		return "", err
	}
	return Pin(cert), nil
}
