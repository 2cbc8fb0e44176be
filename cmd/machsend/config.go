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

// configValue is a setting: the flag's value if given, else the
// environment variable's, else the configuration file's key.
func configValue(flagValue, env, key string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return configFile(key)
}

// configFile is a key's value in the configuration file ("key = value"
// lines, '#' starts a comment), or "".
func configFile(key string) string {
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
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
