package traversal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/machsend/machsend/rendezvous"
)

// Errors callers test for.
var (
	ErrAuth          = errors.New("peer failed to prove the session secret")
	ErrPeerGone      = errors.New("the peer left the session")
	ErrNoPath        = errors.New("no method connected")
	ErrNotApplicable = errors.New("method not applicable to these candidates")
)

const authLabel = "machsend traversal auth v1"

// authenticate proves knowledge of the session secret to the peer and checks
// the peer's proof, over a fresh connection: each side sends its role and a
// 32-byte nonce, then an HMAC-SHA256 over the label, the session, its own
// role and both nonces. The role in the MAC stops a reflected proof; a
// connection to ourselves (same role on both ends) is rejected. Nothing
// secret crosses the wire.
func authenticate(c net.Conn, secret []byte, session, role string, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	var mine [33]byte
	mine[0] = role[0]
	if _, err := rand.Read(mine[1:]); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Write(mine[:]); errc <- err }()
	var theirs [33]byte
	if _, err := io.ReadFull(c, theirs[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	peerRole := string(theirs[:1])
	if peerRole == role || (peerRole != rendezvous.RoleA && peerRole != rendezvous.RoleB) {
		return fmt.Errorf("%w: peer claims role %q", ErrAuth, peerRole)
	}
	nA, nB := mine[1:], theirs[1:]
	if role == rendezvous.RoleB {
		nA, nB = nB, nA
	}
	mac := func(r string) []byte {
		h := hmac.New(sha256.New, secret)
		h.Write([]byte(authLabel))
		h.Write([]byte{0})
		h.Write([]byte(session))
		h.Write([]byte{0, r[0]})
		h.Write(nA)
		h.Write(nB)
		return h.Sum(nil)
	}
	go func() { _, err := c.Write(mac(role)); errc <- err }()
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	if !hmac.Equal(got, mac(peerRole)) {
		return ErrAuth
	}
	return nil
}

// Nomination: once a connection is authenticated, peer A picks the one to
// keep and sends nominate on it; peer B uses the connection on which it
// receives nominate and answers accept. Every other connection is closed.
const (
	nominate = 'N'
	accept   = 'K'
)
