package web

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzSetDefault: whatever a mimeapps.list holds, the handler ends up the
// default exactly once in its group, and setting it again changes nothing.
func FuzzSetDefault(f *testing.F) {
	f.Add("")
	f.Add("[Default Applications]\ntext/html=firefox.desktop\nx-scheme-handler/machsend=old.desktop\n[Added Associations]\na=b\n")
	f.Add("[Default Applications]\n[Default Applications]\n")
	f.Add("no group\nx-scheme-handler/machsend=x\n")
	f.Fuzz(func(t *testing.T, in string) {
		if strings.ContainsAny(in, "\r") {
			return // bufio.Scanner's lines; a CR stays part of a line
		}
		out := setDefault(in, SchemeMIME, desktopName)
		if again := setDefault(out, SchemeMIME, desktopName); again != out {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
		want := SchemeMIME + "=" + desktopName
		group, n := "", 0
		for _, line := range strings.Split(out, "\n") {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, "[") {
				group = trimmed
			}
			if group == "[Default Applications]" && trimmed == want {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("handler not set in\n%q", out)
		}
	})
}

// FuzzStagePath: no name a page sends puts anything outside the staging
// folder.
func FuzzStagePath(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "a/../../x", "/etc/x", "a/b/c", "..", ".", "a//b", "a\x00b"} {
		f.Add(s, false)
	}
	parent := f.TempDir()
	f.Fuzz(func(t *testing.T, name string, folder bool) {
		st, err := newStage(parent)
		if err != nil {
			t.Fatal(err)
		}
		defer st.close()
		_ = st.put(name, folder, time.Time{}, strings.NewReader("x"))
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != filepath.Base(st.dir) {
			t.Fatalf("%q: the parent holds %v", name, entries)
		}
		staged, _ := st.list()
		for _, e := range staged {
			if strings.HasPrefix(e.Path, "/") || strings.Contains("/"+e.Path+"/", "/../") {
				t.Fatalf("staged %q", e.Path)
			}
		}
	})
}
