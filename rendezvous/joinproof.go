package rendezvous

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// Joining a session proves knowledge of the link's secret without showing
// it to the server: the creator registers a verifier, SHA-256 of a join
// key derived from the secret (HMAC-SHA256 under a fixed label), and the
// joiner presents the key. The server can check a key but cannot derive
// the secret from it, nor the transfer's keys (those come from the secret
// under other labels); a session id alone, which the server and anyone who
// sees a link without its fragment knows, grants nothing.

// JoinProof derives the join key (for Join) and its verifier (for Create)
// from a session secret, both hex.
func JoinProof(secret []byte) (key, verifier string) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("machsend rendezvous join key v1"))
	k := m.Sum(nil)
	v := sha256.Sum256(k)
	return hex.EncodeToString(k), hex.EncodeToString(v[:])
}

// parseDigest reads a 32-byte value written as 64 hex digits.
func parseDigest(what, s string) ([32]byte, error) {
	var out [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(out) {
		return out, fmt.Errorf("%s: want 64 hex digits", what)
	}
	copy(out[:], b)
	return out, nil
}

// keyMatches checks a presented join key against a session's verifier in
// constant time.
func keyMatches(key string, verifier [32]byte) bool {
	k, err := parseDigest("key", key)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(k[:])
	return subtle.ConstantTimeCompare(sum[:], verifier[:]) == 1
}
