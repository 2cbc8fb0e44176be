package session

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/schollz/pake/v3"

	"github.com/machsend/machsend/rendezvous"
)

// The peers of a code session turn the weak code into a strong secret
// with a PAKE (SPAKE2 on P-256, github.com/schollz/pake, croc's), over
// pair.messages through the server, which sees only the PAKE's public
// values: it cannot test a guess of the code against them, and a peer
// gets one guess per code (the server lets a code session be joined
// once). Both sides then confirm the secret (HMAC of a role label): a
// wrong code fails here, before any path is tried, and both sides say so.
//
//	A (sender)                      B (receiver)
//	  {pake: X}             ->
//	                        <-      {pake: Y, confirm: HMAC(s, "receiver")}
//	  session.key(verifier(s))
//	  {confirm: HMAC(s, "sender")} ->
//	                                 session.prove(key(s))
//	                        <-      {proven: true}
//
// s is HKDF(PAKE key, session id); the transfer then runs as with a link
// whose secret is s.

// ErrWrongCode: the two sides did not hold the same code.
var ErrWrongCode = errors.New("the code does not match")

// pakeCurve is the curve of the PAKE.
const pakeCurve = "p256"

// pakeWait bounds each wait for the peer's next message.
const pakeWait = 30 * time.Second

// pakeMsg is one message of the exchange.
type pakeMsg struct {
	Pake    []byte `json:"pake,omitempty"`
	Confirm []byte `json:"confirm,omitempty"`
	Proven  bool   `json:"proven,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (p *Peer) sendMsg(ctx context.Context, m pakeMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return p.client.Message(ctx, p.ID, b)
}

// recvMsg waits for the peer's next message; one that reports an error
// ends the exchange with it.
func (p *Peer) recvMsg(ctx context.Context) (pakeMsg, error) {
	var m pakeMsg
	select {
	case b := <-p.signal.Messages():
		if err := json.Unmarshal(b, &m); err != nil {
			return m, fmt.Errorf("the peer sent a malformed code message: %w", err)
		}
		if m.Error != "" {
			return m, fmt.Errorf("%w (the other side says: %s)", ErrWrongCode, m.Error)
		}
		return m, nil
	case <-p.signal.PeerGone():
		return m, errors.New("the other side left during the code exchange")
	case <-time.After(pakeWait):
		return m, fmt.Errorf("no answer from the other side within %v during the code exchange", pakeWait)
	case <-ctx.Done():
		return m, ctx.Err()
	}
}

// pakeUpdate feeds the peer's PAKE message to ours. The library parses
// the peer's bytes itself and may panic on hostile ones; a panic is the
// peer's malformed message, never this process's end.
func pakeUpdate(mine *pake.Pake, theirs []byte) (key []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the peer's code message is malformed: %v", r)
		}
	}()
	if err := mine.Update(theirs); err != nil {
		return nil, fmt.Errorf("the peer's code message is malformed: %w", err)
	}
	return mine.SessionKey()
}

// codeSecret derives the session secret from the PAKE's key.
func codeSecret(key []byte, session string) ([]byte, error) {
	return hkdf.Key(sha256.New, key, []byte(session), "machsend code secret v1", 32)
}

func confirmation(secret []byte, role string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("machsend code confirm v1 " + role))
	return m.Sum(nil)
}

// agreeSender runs the sender's side; it returns the session secret.
func (p *Peer) agreeSender(ctx context.Context, c Code) ([]byte, error) {
	a, err := pake.InitCurve(c.password(), 0, pakeCurve)
	if err != nil {
		return nil, err
	}
	if err := p.sendMsg(ctx, pakeMsg{Pake: a.Bytes()}); err != nil {
		return nil, err
	}
	m, err := p.recvMsg(ctx)
	if err != nil {
		return nil, err
	}
	key, err := pakeUpdate(a, m.Pake)
	if err != nil {
		return nil, err
	}
	secret, err := codeSecret(key, p.ID)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(m.Confirm, confirmation(secret, "receiver")) {
		_ = p.sendMsg(ctx, pakeMsg{Error: "wrong code"})
		return nil, fmt.Errorf("%w: someone tried a wrong code; it is spent now (share again for a new code)", ErrWrongCode)
	}
	_, verifier := rendezvous.JoinProof(secret)
	if err := p.client.SetKey(ctx, p.ID, verifier); err != nil {
		return nil, fmt.Errorf("register the agreed key: %w", err)
	}
	if err := p.sendMsg(ctx, pakeMsg{Confirm: confirmation(secret, "sender")}); err != nil {
		return nil, err
	}
	if m, err = p.recvMsg(ctx); err != nil {
		return nil, err
	}
	if !m.Proven {
		return nil, errors.New("the other side did not finish the code exchange")
	}
	return secret, nil
}

// agreeReceiver runs the receiver's side; it returns the session secret.
func (p *Peer) agreeReceiver(ctx context.Context, c Code) ([]byte, error) {
	m, err := p.recvMsg(ctx)
	if err != nil {
		return nil, err
	}
	b, err := pake.InitCurve(c.password(), 1, pakeCurve)
	if err != nil {
		return nil, err
	}
	key, err := pakeUpdate(b, m.Pake)
	if err != nil {
		return nil, err
	}
	secret, err := codeSecret(key, p.ID)
	if err != nil {
		return nil, err
	}
	if err := p.sendMsg(ctx, pakeMsg{Pake: b.Bytes(), Confirm: confirmation(secret, "receiver")}); err != nil {
		return nil, err
	}
	if m, err = p.recvMsg(ctx); err != nil {
		return nil, fmt.Errorf("%w: check it with the sender; it is spent now, so they must share again for a new one", err)
	}
	if !hmac.Equal(m.Confirm, confirmation(secret, "sender")) {
		return nil, fmt.Errorf("%w: the sender's side did not confirm it", ErrWrongCode)
	}
	keyHex, _ := rendezvous.JoinProof(secret)
	if err := p.client.Prove(ctx, p.ID, keyHex); err != nil {
		return nil, fmt.Errorf("prove the agreed key: %w", err)
	}
	return secret, p.sendMsg(ctx, pakeMsg{Proven: true})
}
