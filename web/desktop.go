package web

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SchemeMIME is the MIME type desktops use for the handler of
// machsend:// links.
const SchemeMIME = "x-scheme-handler/machsend"

// desktopName is the desktop entry's file name.
const desktopName = "machsend.desktop"

// InstallHandler registers `exe web LINK` as the user's handler of
// machsend:// links on a Linux desktop (freedesktop.org): it writes the
// desktop entry $XDG_DATA_HOME/applications/machsend.desktop and makes it
// the default for x-scheme-handler/machsend in $XDG_CONFIG_HOME/mimeapps.list,
// keeping every other line of that file. It returns the two paths.
func InstallHandler(exe string) (entry, mimeapps string, err error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", "", fmt.Errorf("no home folder to install the handler in: %w", err)
	}
	data := xdgDir("XDG_DATA_HOME", filepath.Join(home, ".local", "share"))
	config := xdgDir("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	entry = filepath.Join(data, "applications", desktopName)
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		return "", "", fmt.Errorf("cannot install the handler: %w", err)
	}
	if err := os.WriteFile(entry, []byte(desktopEntry(exe)), 0o644); err != nil {
		return "", "", fmt.Errorf("cannot install the handler: %w", err)
	}
	mimeapps = filepath.Join(config, "mimeapps.list")
	if err := os.MkdirAll(config, 0o755); err != nil {
		return "", "", fmt.Errorf("cannot register the handler: %w", err)
	}
	old, err := os.ReadFile(mimeapps)
	if err != nil && !os.IsNotExist(err) {
		return "", "", fmt.Errorf("cannot read %s: %w", mimeapps, err)
	}
	if err := os.WriteFile(mimeapps, []byte(setDefault(string(old), SchemeMIME, desktopName)), 0o644); err != nil {
		return "", "", fmt.Errorf("cannot register the handler: %w", err)
	}
	return entry, mimeapps, nil
}

func xdgDir(env, def string) string {
	if v := os.Getenv(env); filepath.IsAbs(v) {
		return v
	}
	return def
}

// desktopEntry is the desktop entry that opens a link with exe.
func desktopEntry(exe string) string {
	return "[Desktop Entry]\n" +
		"Type=Application\n" +
		"Name=machsend\n" +
		"Comment=Open machsend links: files straight from the sender's computer\n" +
		"Exec=" + execQuote(exe) + " web %u\n" +
		"Terminal=false\n" +
		"NoDisplay=true\n" +
		"MimeType=" + SchemeMIME + ";\n" +
		"Categories=Network;FileTransfer;\n"
}

// execQuote quotes an argument for a desktop entry's Exec key (the
// Desktop Entry Specification's rules: double quotes, with ", `, $ and \
// escaped by a backslash, and % doubled).
func execQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if !strings.ContainsAny(s, " \t\n\"'\\><~|&;$*?#()`=") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)
	return `"` + r.Replace(s) + `"`
}

// setDefault sets key=value in the [Default Applications] group of a
// mimeapps.list, adding the group if missing and keeping everything else.
func setDefault(list, key, value string) string {
	var out []string
	group, done := "", false
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") {
			if group == "[Default Applications]" && !done {
				out = append(out, key+"="+value)
				done = true
			}
			group = trimmed
		} else if group == "[Default Applications]" && strings.HasPrefix(trimmed, key+"=") {
			if !done {
				out = append(out, key+"="+value)
				done = true
			}
			continue
		}
		out = append(out, line)
	}
	if !done {
		if group != "[Default Applications]" {
			if len(out) > 0 && out[len(out)-1] != "" {
				out = append(out, "")
			}
			out = append(out, "[Default Applications]")
		}
		out = append(out, key+"="+value)
	}
	return strings.Join(out, "\n") + "\n"
}
