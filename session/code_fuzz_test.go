package session

import (
	"strings"
	"testing"

	"github.com/schollz/pake/v3"
)

// FuzzParseCode: any typed text parses to a code that renders back to
// itself, or is refused.
func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"7-guitar-orbit", " 12-Zebra-zipper ", "0-a-b", "7--", "999999-acid-acorn"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			return
		}
		back, err := ParseCode(c.String())
		if err != nil || back.String() != c.String() || c.Nameplate < 1 || c.Nameplate > maxNameplate || len(c.Words) != CodeWords {
			t.Fatalf("%q -> %q -> %v", s, c, err)
		}
	})
}

// FuzzPakeUpdate: whatever a peer sends as its PAKE message, our side
// returns an error or a key, never panics.
func FuzzPakeUpdate(f *testing.F) {
	a, _ := pake.InitCurve([]byte("pw"), 0, pakeCurve)
	f.Add(a.Bytes(), true)
	f.Add([]byte(`{"Role":0,"Uᵤ":null}`), false)
	f.Add([]byte(`{"Role":1}`), true)
	f.Add([]byte(`null`), false)
	f.Fuzz(func(t *testing.T, msg []byte, receiver bool) {
		role := 0
		if receiver {
			role = 1
		}
		mine, err := pake.InitCurve([]byte("machsend code v1 7-guitar-orbit"), role, pakeCurve)
		if err != nil {
			t.Fatal(err)
		}
		key, err := pakeUpdate(mine, msg)
		if err == nil && len(key) == 0 {
			t.Fatalf("no error and no key for %q", msg)
		}
		if err != nil && !strings.Contains(err.Error(), "malformed") && !strings.Contains(err.Error(), "session key") {
			t.Fatalf("error %v does not say the message is malformed", err)
		}
	})
}
