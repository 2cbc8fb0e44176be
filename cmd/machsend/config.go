package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// configPath is machsend's configuration file:
// $XDG_CONFIG_HOME/machsend/config, or ~/.config/machsend/config.
func configPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "machsend", "config")
}

// configServer is the default rendezvous server from the configuration
// file ("server = HOST:PORT"; '#' starts a comment), or "".
func configServer() string {
	path := configPath()
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "server" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
