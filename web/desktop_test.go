package web

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetDefault(t *testing.T) {
	const k, v = SchemeMIME, desktopName
	tests := []struct{ name, in, want string }{
		{"empty", "", "[Default Applications]\n" + k + "=" + v + "\n"},
		{"other groups kept", "[Added Associations]\ntext/plain=gedit.desktop\n",
			"[Added Associations]\ntext/plain=gedit.desktop\n\n[Default Applications]\n" + k + "=" + v + "\n"},
		{"replaced in place", "[Default Applications]\ntext/html=firefox.desktop\n" + k + "=old.desktop\n[Added Associations]\na=b\n",
			"[Default Applications]\ntext/html=firefox.desktop\n" + k + "=" + v + "\n[Added Associations]\na=b\n"},
		{"added to the group", "[Default Applications]\ntext/html=firefox.desktop\n[Other]\nx=y\n",
			"[Default Applications]\ntext/html=firefox.desktop\n" + k + "=" + v + "\n[Other]\nx=y\n"},
		{"group last", "[Default Applications]\ntext/html=firefox.desktop\n",
			"[Default Applications]\ntext/html=firefox.desktop\n" + k + "=" + v + "\n"},
		{"same key in another group untouched", "[Added Associations]\n" + k + "=other.desktop\n",
			"[Added Associations]\n" + k + "=other.desktop\n\n[Default Applications]\n" + k + "=" + v + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := setDefault(tc.in, k, v); got != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
			if again := setDefault(tc.want, k, v); again != tc.want {
				t.Fatalf("not idempotent:\n%q", again)
			}
		})
	}
}

func TestExecQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/machsend":       "/usr/bin/machsend",
		"/opt/my apps/machsend":   `"/opt/my apps/machsend"`,
		`/tmp/a"b$c`:              `"/tmp/a\"b\$c"`,
		"/home/x/100%/machsend":   "/home/x/100%%/machsend",
		"/home/x/back\\slash/m s": `"/home/x/back\\slash/m s"`,
		"/home/x/`cmd`/machsend":  "\"/home/x/\\`cmd\\`/machsend\"",
	} {
		if got := execQuote(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestInstallHandler(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "cfg"))
	os.MkdirAll(filepath.Join(home, "cfg"), 0o755)
	os.WriteFile(filepath.Join(home, "cfg", "mimeapps.list"), []byte("[Default Applications]\ntext/html=firefox.desktop\n"), 0o644)
	entry, list, err := InstallHandler("/opt/machsend/bin/machsend")
	if err != nil {
		t.Fatal(err)
	}
	if entry != filepath.Join(home, ".local/share/applications/machsend.desktop") || list != filepath.Join(home, "cfg/mimeapps.list") {
		t.Fatalf("paths %s %s", entry, list)
	}
	e, _ := os.ReadFile(entry)
	for _, want := range []string{"Exec=/opt/machsend/bin/machsend web %u\n", "MimeType=x-scheme-handler/machsend;\n", "Type=Application\n"} {
		if !strings.Contains(string(e), want) {
			t.Errorf("entry lacks %q:\n%s", want, e)
		}
	}
	l, _ := os.ReadFile(list)
	if string(l) != "[Default Applications]\ntext/html=firefox.desktop\nx-scheme-handler/machsend=machsend.desktop\n" {
		t.Fatalf("mimeapps.list:\n%s", l)
	}
}
