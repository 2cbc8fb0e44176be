package session

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// CodeWords is how many words a short code has after its number: with
// 256 words, 16 bits a guesser must hit with the one guess a code allows
// (magic-wormhole's choice).
const CodeWords = 2

// maxNameplate bounds a code's number (the server keeps them short).
const maxNameplate = 999_999

// ErrCode is wrapped by every error about a code's form.
var ErrCode = errors.New("not a machsend code")

// Code is a short code: the share's number on its server (the nameplate)
// and words only the two people know, e.g. 7-guitar-orbit.
type Code struct {
	Nameplate int
	Words     []string
}

// String renders the code.
func (c Code) String() string {
	return strconv.Itoa(c.Nameplate) + "-" + strings.Join(c.Words, "-")
}

// password is what the PAKE is keyed with: the whole code, so a code's
// words under another number are another password.
func (c Code) password() []byte { return []byte("machsend code v1 " + c.String()) }

// newCode draws CodeWords words for a nameplate.
func newCode(nameplate int) Code {
	c := Code{Nameplate: nameplate}
	for range CodeWords {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(codeWordList))))
		c.Words = append(c.Words, codeWordList[n.Int64()])
	}
	return c
}

// LooksLikeCode says whether s has a code's shape (a number, then words),
// so a command can tell a code from a link.
func LooksLikeCode(s string) bool {
	num, _, ok := strings.Cut(strings.TrimSpace(s), "-")
	_, err := strconv.Atoi(num)
	return ok && err == nil && !strings.Contains(s, "/")
}

// ParseCode reads a code as a person typed it: spaces around it, any case.
func ParseCode(s string) (Code, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "-")
	if len(parts) != CodeWords+1 {
		return Code{}, fmt.Errorf("%w: want a number and %d words, like 7-guitar-orbit", ErrCode, CodeWords)
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 1 || n > maxNameplate {
		return Code{}, fmt.Errorf("%w: %q is not a share number", ErrCode, parts[0])
	}
	for _, w := range parts[1:] {
		if !isCodeWord(w) {
			return Code{}, fmt.Errorf("%w: %q is not one of the code words (check the spelling)", ErrCode, w)
		}
	}
	return Code{Nameplate: n, Words: parts[1:]}, nil
}

func isCodeWord(w string) bool {
	for _, x := range codeWordList {
		if x == w {
			return true
		}
	}
	return false
}
